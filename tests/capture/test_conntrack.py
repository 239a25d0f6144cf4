"""Conntrack over netlink, against the running kernel's table (root: CAP_NET_ADMIN)."""

from __future__ import annotations

import os
import socket

import pytest

from egresswatch.capture.conntrack import Conntrack, Tuple

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: conntrack over netlink")

LOOPBACK = socket.inet_aton("127.0.0.1")


def test_a_connection_is_found_from_either_direction_and_is_not_translated() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.sendto(b"x", receiver.getsockname())
    sport, dport = sender.getsockname()[1], receiver.getsockname()[1]
    conntrack = Conntrack()
    try:
        sent = Tuple(LOOPBACK, sport, LOOPBACK, dport, socket.IPPROTO_UDP)
        found = conntrack.lookup(sent)
        assert found is not None and found.original == sent
        assert found.reply == sent.reversed() and not found.translated
        assert conntrack.lookup(sent.reversed()) == found
        unknown = Tuple(LOOPBACK, sport, LOOPBACK, dport ^ 1, socket.IPPROTO_UDP)
        assert conntrack.lookup(unknown) is None
    finally:
        conntrack.close()
        sender.close()
        receiver.close()
