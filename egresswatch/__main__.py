import sys

from egresswatch.cli.main import main

sys.exit(main())
