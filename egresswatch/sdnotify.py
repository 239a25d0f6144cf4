"""Telling systemd how the daemon is doing (``Type=notify``, ``WatchdogSec=``): the
sd_notify datagram protocol, spoken directly (a unix datagram to ``$NOTIFY_SOCKET``). Without
that variable (not started by systemd) every call does nothing."""

from __future__ import annotations

import os
import socket


class ServiceNotifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # "@name" is an abstract socket: a leading NUL byte in the address.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        self.watchdog_interval = int(usec) / 2e6 if usec.isdigit() else None
        """Seconds between watchdog pings (half of WatchdogSec), None without a watchdog."""

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}")

    def watchdog(self) -> None:
        if self.watchdog_interval is not None:
            self._send("WATCHDOG=1")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def _send(self, message: str) -> None:
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.sendto(message.encode(), self._address)
        except OSError:
            pass  # systemd gone or the socket refused: nothing the daemon could do about it
