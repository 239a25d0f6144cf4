"""egresswatch: a passive egress monitor for AI inference boxes."""

__version__ = "0.1.0"
