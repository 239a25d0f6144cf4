#!/usr/bin/env bash
# Install egresswatch on this box with the embedded defaults and run it:
#   /opt/egresswatch (virtualenv), /etc/egresswatch/egresswatch.toml (default config, kept if present),
#   /etc/egresswatch/policy.yaml (the default policy, kept if present),
#   /var/lib/egresswatch/egresswatch.db (SQLite, migrated to the newest schema).
# Capture files given as arguments are replayed into the database and the newest flows shown;
# without any, it runs the daemon in the foreground (`egresswatch run`: live capture on the Docker
# bridges and uplinks, and the REST API on 127.0.0.1:8787; Ctrl-C writes out every flow and stops).
# Idempotent: run it again after `git pull` to upgrade. As a service: deploy/install.sh.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
prefix=/opt/egresswatch

if [ "$(id -u)" -ne 0 ]; then
    echo "quickstart: run as root (it installs to $prefix and /etc/egresswatch)" >&2
    exit 2
fi
for f in "$@"; do
    [ -r "$f" ] || { echo "quickstart: cannot read capture file $f" >&2; exit 2; }
done

bash "$repo/deploy/install.sh" --files-only  # packages, /opt/egresswatch, /etc/egresswatch
install -d -m 0750 /var/lib/egresswatch

egresswatch db upgrade
egresswatch geoip status
if [ "$#" -eq 0 ]; then
    echo "quickstart: capturing live; see the flows from another shell with: egresswatch flows"
    echo "quickstart: or ask the API: curl -s 127.0.0.1:8787/api/v1/destinations; curl -s 127.0.0.1:8787/readyz"
    exec egresswatch run --listen 127.0.0.1:8787
fi
for f in "$@"; do
    egresswatch replay "$f"
done
egresswatch flows --limit 20
