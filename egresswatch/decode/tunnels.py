"""Tunnels whose inner packets are flows of their own (Teredo: IPv6 inside UDP).

A Teredo client reaches the IPv6 internet around an IPv4-only firewall policy, so the inner
destination is what an egress monitor must name; the outer UDP flow is kept as well, as Zeek does.
Relays answer from any port, so a datagram is Teredo when its payload is an IPv6 packet of exactly
the datagram's size with one address in the Teredo prefix 2001:0::/32 (Zeek finds it by content
too).
"""

from __future__ import annotations

from egresswatch.decode.packet import UDP, PacketFacts, decode_ip

TEREDO_PORT = 3544
"""The Teredo servers' port: its qualification exchange uses link-local inner addresses."""
_TEREDO_PREFIX = b"\x20\x01\x00\x00"
_NO_NEXT_HEADER = 59  # a Teredo "bubble": keeps the NAT mapping open, carries nothing


def teredo_inner(outer: PacketFacts) -> PacketFacts | None:
    """The IPv6 packet inside a Teredo UDP datagram, or None when it carries none."""
    if outer.proto != UDP:
        return None
    data, p = outer.data, outer.payload_offset
    end = min(len(data), p + outer.payload_len)
    # Optional authentication (0x0001) and origin indication (0x0000) headers come first.
    if end - p >= 4 and data[p] == 0 and data[p + 1] == 1:
        p += 13 + data[p + 2] + data[p + 3]
    if end - p >= 8 and data[p] == 0 and data[p + 1] == 0:
        p += 8
    if end - p < 40 or data[p] >> 4 != 6 or 40 + (data[p + 4] << 8 | data[p + 5]) != end - p:
        return None
    if (
        TEREDO_PORT not in (outer.sport, outer.dport)
        and data[p + 8 : p + 12] != _TEREDO_PREFIX
        and data[p + 24 : p + 28] != _TEREDO_PREFIX
    ):
        return None
    inner = decode_ip(data[p:end])
    if type(inner) is not PacketFacts or inner.proto == _NO_NEXT_HEADER:
        return None
    return inner
