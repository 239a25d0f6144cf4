"""The capture filter of the tshark engine: only the packets that open, close or name a flow.

``BOUNDARY_FILTER`` is libpcap filter text (pcap-filter(7)) that dumpcap compiles and attaches
to its socket, so the kernel hands over nothing else. It passes:

- TCP segments with SYN, FIN or RST set (a flow's start and end);
- DNS, UDP and TCP port 53, every packet (the answers that name addresses);
- a TLS ClientHello at the start of a TCP payload (record type 0x16, version major 3, handshake
  type 1): the SNI, ALPN and JA4;
- an HTTP/1.x request line at the start of a TCP payload (``GET ``, ``POST``, ...): the Host;
- QUIC long-header packets of type 0 or 1 on UDP port 443: v1 Initial (and 0-RTT), v2 Initial
  (and Retry), whose first byte RFC 9000 leaves unprotected. The fixed bit is not checked: RFC
  9287 lets a client grease it.

Limits, all from what the filter language can say:

- libpcap's ``tcp[]``/``udp[]`` index IPv4 only (pcap-filter(7): "upper-layer protocol types
  only apply to IPv4, not IPv6"; libpcap issue #600, still open). IPv6 is matched with ``ip6[]``
  at fixed offsets, which holds only when TCP or UDP follows the 40-byte header directly
  (``ip6[6]`` is the next header). IPv6 packets with extension headers (hop-by-hop, routing,
  destination options, fragments) pass only through ``port 53``, and not even there: libpcap's
  own ``port`` has the same limit.
- Only the first segment of a ClientHello or request line is captured. A ClientHello longer
  than one segment (post-quantum key shares make ~1.8 kB hellos) is not complete, and its flow
  is not named from it.
- QUIC on ports other than 443, UDP other than DNS and QUIC, ICMP and other protocols are not
  captured at all: they make no flow record with this engine.
- A frame too short for a payload check is rejected by that check (a BPF load past the end of
  the packet ends the program), so header-only checks come first in the filter.
"""

from __future__ import annotations

TCP_CONTROL_FLAGS = 0x07
"""FIN, SYN and RST in the TCP flags byte."""

HTTP_METHODS = ("GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE")
"""Request methods whose first four bytes (a three-letter one with its space) are matched."""


def _payload_checks(byte: str, word: str, tcp_payload: str) -> list[str]:
    """The HTTP and ClientHello tests on a TCP payload starting at ``tcp_payload``: ``byte``
    and ``word`` format an offset into a one- and four-byte load of the filter language."""
    words = [int.from_bytes(f"{m} "[:4].encode(), "big") for m in HTTP_METHODS]
    http = " or ".join(f"{word.format(tcp_payload)} = {w:#010x}" for w in words)
    hello = (
        f"{byte.format(tcp_payload)} = 0x16 and {byte.format(tcp_payload + ' + 1')} = 3"
        f" and {byte.format(tcp_payload + ' + 5')} = 1"
    )
    return [f"({http})", f"({hello})"]


def boundary_filter() -> str:
    """The filter text: header-only tests first, then the payload tests, IPv4 then IPv6."""
    v4_payload = "((tcp[12] & 0xf0) >> 2)"  # the TCP data offset, in bytes
    v6_payload = "40 + ((ip6[52] & 0xf0) >> 2)"
    v6_tcp, v6_udp = "ip6[6] = 6", "ip6[6] = 17"
    headers = [
        f"tcp[13] & {TCP_CONTROL_FLAGS:#04x} != 0",
        f"({v6_tcp} and ip6[53] & {TCP_CONTROL_FLAGS:#04x} != 0)",
        "port 53",
        "(udp port 443 and udp[8] & 0xa0 = 0x80)",
        f"({v6_udp} and (ip6[40:2] = 443 or ip6[42:2] = 443) and ip6[48] & 0xa0 = 0x80)",
    ]
    v4 = _payload_checks("tcp[{}]", "tcp[{}:4]", v4_payload)
    v6 = [
        f"({v6_tcp} and {check})" for check in _payload_checks("ip6[{}]", "ip6[{}:4]", v6_payload)
    ]
    return " or ".join([*headers, *v4, *v6])


BOUNDARY_FILTER = boundary_filter()
"""What dumpcap captures with the tshark engine (see the module docstring)."""
