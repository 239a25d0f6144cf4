"""The kernel's connection tracking table, asked over netlink (ctnetlink): what NAT did to a flow.

A container's connection leaves the box twice in the captures: on its bridge with the container's
address, and on the uplink with the address Docker's MASQUERADE gave it. Conntrack holds both
views of the one connection (the original tuple and the reply tuple); one GET per flow finds
them. Needs CAP_NET_ADMIN and the nf_conntrack_netlink module (loaded on demand by the kernel).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from typing import NamedTuple

from egresswatch.errors import CaptureError

_NETLINK_NETFILTER = 12
_NFNL_SUBSYS_CTNETLINK = 1
_IPCTNL_MSG_CT_GET = 1
_NLM_F_REQUEST = 0x1
_NLMSG_ERROR = 2
_NLA_F_NESTED = 0x8000
_CTA_TUPLE_ORIG, _CTA_TUPLE_REPLY = 1, 2
_CTA_TUPLE_IP, _CTA_TUPLE_PROTO = 1, 2
_CTA_IP_V4_SRC, _CTA_IP_V4_DST, _CTA_IP_V6_SRC, _CTA_IP_V6_DST = 1, 2, 3, 4
_CTA_PROTO_NUM, _CTA_PROTO_SRC_PORT, _CTA_PROTO_DST_PORT = 1, 2, 3
_NLMSGHDR = struct.Struct("=IHHII")
_NLATTR = struct.Struct("=HH")


class Tuple(NamedTuple):
    """One direction of a connection, as the packets going that way carry it."""

    src: bytes
    sport: int
    dst: bytes
    dport: int
    proto: int

    def reversed(self) -> Tuple:
        return Tuple(self.dst, self.dport, self.src, self.sport, self.proto)


class Connection(NamedTuple):
    """A conntrack entry: the initiator's packets as they were sent (``original``) and the
    responder's packets as they were sent (``reply``). Without NAT, ``reply`` is ``original``
    reversed."""

    original: Tuple
    reply: Tuple

    @property
    def translated(self) -> bool:
        return self.reply.reversed() != self.original


class Conntrack:
    """Looks connections up in the kernel's table. ``lookup`` is one netlink round trip."""

    def __init__(self) -> None:
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_NETFILTER)
            self._sock.bind((0, 0))
            self._sock.settimeout(1.0)
        except OSError as exc:
            raise CaptureError(f"conntrack over netlink: {exc.strerror or exc}") from exc
        self._seq = 0
        try:
            self.lookup(Tuple(bytes(4), 0, bytes(4), 0, socket.IPPROTO_UDP))  # fails if denied
        except CaptureError:
            self._sock.close()
            raise

    def close(self) -> None:
        self._sock.close()

    def lookup(self, packet: Tuple) -> Connection | None:
        """The connection a packet with this tuple belongs to (either direction), or None."""
        self._seq += 1
        family = socket.AF_INET if len(packet.src) == 4 else socket.AF_INET6
        body = struct.pack("=BBH", family, 0, 0) + _nested(_CTA_TUPLE_ORIG, _tuple_attrs(packet))
        request = _NLMSGHDR.pack(
            _NLMSGHDR.size + len(body),
            (_NFNL_SUBSYS_CTNETLINK << 8) | _IPCTNL_MSG_CT_GET,
            _NLM_F_REQUEST,
            self._seq,
            0,
        )
        try:
            self._sock.send(request + body)
            while True:
                reply = self._sock.recv(65536)
                length, kind, _, seq, _ = _NLMSGHDR.unpack_from(reply)
                if seq == self._seq:
                    break
        except OSError as exc:
            raise CaptureError(f"conntrack over netlink: {exc.strerror or exc}") from exc
        if kind == _NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", reply, _NLMSGHDR.size)
            if code == -errno.ENOENT:
                return None
            raise CaptureError(f"conntrack over netlink: {os.strerror(-code)}")
        attrs = _attributes(reply[_NLMSGHDR.size + 4 : length])
        try:
            return Connection(
                _parse_tuple(attrs[_CTA_TUPLE_ORIG]), _parse_tuple(attrs[_CTA_TUPLE_REPLY])
            )
        except (KeyError, struct.error) as exc:
            raise CaptureError("conntrack over netlink: an answer without its tuples") from exc


def _attr(kind: int, value: bytes) -> bytes:
    size = _NLATTR.size + len(value)
    return _NLATTR.pack(size, kind) + value + bytes(-size % 4)


def _nested(kind: int, inner: bytes) -> bytes:
    return _attr(kind | _NLA_F_NESTED, inner)


def _tuple_attrs(t: Tuple) -> bytes:
    src, dst = (
        (_CTA_IP_V4_SRC, _CTA_IP_V4_DST) if len(t.src) == 4 else (_CTA_IP_V6_SRC, _CTA_IP_V6_DST)
    )
    ip = _attr(src, t.src) + _attr(dst, t.dst)
    proto = _attr(_CTA_PROTO_NUM, bytes([t.proto]))
    if t.proto in (socket.IPPROTO_TCP, socket.IPPROTO_UDP):
        proto += _attr(_CTA_PROTO_SRC_PORT, struct.pack("!H", t.sport))
        proto += _attr(_CTA_PROTO_DST_PORT, struct.pack("!H", t.dport))
    return _nested(_CTA_TUPLE_IP, ip) + _nested(_CTA_TUPLE_PROTO, proto)


def _attributes(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    pos = 0
    while pos + _NLATTR.size <= len(data):
        size, kind = _NLATTR.unpack_from(data, pos)
        if size < _NLATTR.size:
            break
        out[kind & ~_NLA_F_NESTED] = data[pos + _NLATTR.size : pos + size]
        pos += (size + 3) & ~3
    return out


def _parse_tuple(data: bytes) -> Tuple:
    parts = _attributes(data)
    ip, proto = _attributes(parts[_CTA_TUPLE_IP]), _attributes(parts[_CTA_TUPLE_PROTO])
    src = ip.get(_CTA_IP_V4_SRC) or ip[_CTA_IP_V6_SRC]
    dst = ip.get(_CTA_IP_V4_DST) or ip[_CTA_IP_V6_DST]
    sport = (
        struct.unpack("!H", proto[_CTA_PROTO_SRC_PORT])[0] if _CTA_PROTO_SRC_PORT in proto else 0
    )
    dport = (
        struct.unpack("!H", proto[_CTA_PROTO_DST_PORT])[0] if _CTA_PROTO_DST_PORT in proto else 0
    )
    return Tuple(src, sport, dst, dport, proto[_CTA_PROTO_NUM][0])
