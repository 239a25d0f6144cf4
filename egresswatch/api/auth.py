"""Bearer tokens: who may read, who may also acknowledge. Without tokens the API answers only on
loopback (the service refuses any other address)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from egresswatch.config import ApiSettings
from egresswatch.errors import ConfigError


class Tokens:
    """The configured tokens, kept as SHA-256 digests (compared in constant time)."""

    def __init__(self, settings: ApiSettings) -> None:
        self._digests = {_digest(t.token.get_secret_value()): t.access for t in settings.tokens}

    @property
    def required(self) -> bool:
        return bool(self._digests)

    def access(self, header: str | None) -> str | None:
        """``read`` or ``write`` for an Authorization header; None if it grants nothing."""
        if not self._digests:
            return "write"  # loopback only: see check_listen
        if not header or not header.startswith("Bearer "):
            return None
        given = _digest(header.removeprefix("Bearer ").strip())
        for digest, access in self._digests.items():
            if hmac.compare_digest(digest, given):
                return access
        return None


def listen_address(settings: ApiSettings) -> tuple[str, int]:
    """(host, port) of ``listen``; ConfigError when it is not loopback and there is no token."""
    host, _, port = settings.listen.rpartition(":")
    host = host.strip("[]")
    try:
        number = int(port)
        loopback = ipaddress.ip_address(host).is_loopback if host != "localhost" else True
    except ValueError as exc:
        raise ConfigError(f"api.listen: {settings.listen!r} is not HOST:PORT") from exc
    if not loopback and not settings.tokens:
        raise ConfigError(
            f"api.listen {settings.listen} is not loopback: add a token ([[api.tokens]]) first, "
            "or anyone who reaches it reads every flow"
        )
    return host, number


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
