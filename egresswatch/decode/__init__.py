"""Bytes to packet facts: link layers, IPv4/IPv6, TCP/UDP/ICMP. Pure, no I/O."""

from egresswatch.decode.fragments import FragmentReassembler
from egresswatch.decode.linktypes import LinkType
from egresswatch.decode.packet import Fragment, PacketFacts, decode, decode_ip

__all__ = ["Fragment", "FragmentReassembler", "LinkType", "PacketFacts", "decode", "decode_ip"]
