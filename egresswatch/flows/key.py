"""What identifies a flow: its key, the direction-free form of the key, and its uid."""

from __future__ import annotations

import hashlib

from egresswatch.decode.packet import PacketFacts

FlowKey = tuple[bytes, int, bytes, int, int]
"""(initiator address, initiator port, responder address, responder port, IP protocol)."""


def canonical(s: bytes, sp: int, t: bytes, dp: int, proto: int) -> tuple[object, ...]:
    """The key with its lower end first: the same for both directions of a flow."""
    return (s, sp, t, dp, proto) if (s, sp) <= (t, dp) else (t, dp, s, sp, proto)


def flow_id(p: PacketFacts) -> tuple[object, ...]:
    """The direction-free key of the flow a packet belongs to."""
    return canonical(p.src, p.sport, p.dst, p.dport, p.proto)


_UID_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_UID_TABLE = bytes(_UID_ALPHABET[b % 62] for b in range(256))  # hash bytes -> base62 letters


def flow_uid(interface: str, first_seen: float, key: FlowKey) -> str:
    """A Zeek-like uid ("C" + 17 base62 characters), derived from what identifies the flow.

    Deterministic, so replaying the same capture twice updates the same rows instead of
    duplicating them.
    """
    src, sport, dst, dport, proto = key
    material = b"|".join(
        [
            interface.encode(),
            f"{first_seen:.6f}".encode(),
            src,
            dst,
            f"{sport}/{dport}/{proto}".encode(),
        ]
    )
    return "C" + hashlib.blake2b(material, digest_size=17).digest().translate(_UID_TABLE).decode()
