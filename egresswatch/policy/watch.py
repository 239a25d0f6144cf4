"""The policy in force for the daemon: loaded at start, and again when its file changes or on
SIGHUP; a broken new file keeps the old policy (and says why)."""

from __future__ import annotations

import logging
from pathlib import Path

from egresswatch.errors import ConfigError
from egresswatch.policy.load import policy_in_force
from egresswatch.policy.model import Policy

_log = logging.getLogger(__name__)


class PolicyWatch:
    """Which policy file is in force, and whether it changed since it was read."""

    def __init__(self, geoip_kinds: set[str]) -> None:
        self.geoip_kinds = geoip_kinds
        """The kinds of GeoIP database in use: rules that need another are warned of."""
        self._read: tuple[Path, float] = (Path(), 0.0)

    def load(self, path: Path) -> Policy:
        """The policy at ``path`` (the built-in one when it is missing); ConfigError if broken."""
        policy, chosen = policy_in_force(path)
        self._read = (path, _mtime(path))  # also when missing: creating it is a change
        _log.info("policy %s: %d scopes", chosen, len(policy.scopes))
        self._warn(policy)
        return policy

    def changed(self, path: Path) -> bool:
        """Whether ``path`` is another file, or was written, since the policy was read."""
        read, mtime = self._read
        return read != path or _mtime(path) != mtime

    def reload(self, path: Path, why: str) -> Policy | None:
        """The new policy, or None when the file is broken (the old one stays)."""
        self._read = (path, _mtime(path))
        try:
            policy, chosen = policy_in_force(path)
        except ConfigError as exc:
            _log.error("%s: policy not reloaded, the old one stays:\n%s", why, exc)
            return None
        _log.info("%s: policy %s reloaded: %d scopes", why, chosen, len(policy.scopes))
        self._warn(policy)
        return policy

    def _warn(self, policy: Policy) -> None:
        for gap in policy.geoip_gaps(self.geoip_kinds):  # a deny by country would fail open
            _log.warning("policy: %s (docs/geoip.md)", gap)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
