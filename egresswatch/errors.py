"""The error hierarchy: every failure egresswatch reports is one of these."""


class EgressWatchError(Exception):
    """Base of every error egresswatch raises on purpose."""


class ConfigError(EgressWatchError):
    """The configuration file or environment names a bad key or value."""


class CaptureError(EgressWatchError):
    """A capture source (pcap file, interface) cannot be read."""


class StoreError(EgressWatchError):
    """The database cannot be opened, migrated or written."""


class StoreRefusedError(StoreError):
    """The database refused the data itself (a value too long, a constraint): retrying the
    same write cannot help."""


class NotifyError(EgressWatchError):
    """A webhook did not take an alert (kept in the outbox and tried again)."""
