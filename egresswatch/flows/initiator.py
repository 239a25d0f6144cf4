"""Who opened a flow, when the first packet seen does not say (a SYN does)."""

from __future__ import annotations

from egresswatch.decode.packet import TCP, UDP
from egresswatch.flows.tcpstate import ACK, SYN

# Zeek's likely_server_ports (the ports its default protocol scripts register), plus the services
# of an inference box. A flow seen mid-stream is turned around when only its sender's port is one.
LIKELY_SERVER_PORTS = frozenset(
    {
        21,
        22,
        23,
        25,
        53,
        67,
        69,
        80,
        81,
        88,
        102,
        110,
        123,
        135,
        137,
        139,
        143,
        161,
        162,
        389,
        443,
        445,
        465,
        502,
        514,
        563,
        585,
        587,
        614,
        631,
        636,
        853,
        989,
        990,
        992,
        993,
        995,
        1080,
        1194,
        1434,
        1812,
        1883,
        2049,
        2123,
        2152,
        2375,
        2376,
        2811,
        3128,
        3306,
        3389,
        3478,
        3544,
        4789,
        5060,
        5072,
        5222,
        5223,
        5269,
        5353,
        5355,
        5432,
        5671,
        5672,
        6081,
        6379,
        6443,
        6666,
        6667,
        6668,
        6669,
        6697,
        8000,
        8080,
        8443,
        8787,
        8888,
        9200,
        11211,
        11434,
        20000,
        27017,
    }
)


def responder_sent_first(proto: int, sport: int, dport: int, flags: int) -> bool:
    """Whether the first packet of a flow came from its responder (Zeek's WantConnection flip)."""
    if proto == TCP:
        if flags & SYN and not flags & ACK:
            return False  # a pure SYN names its sender the originator
        if sport not in LIKELY_SERVER_PORTS:
            return False
        if dport in LIKELY_SERVER_PORTS:
            return not flags & SYN and sport < dport
        return True
    if proto == UDP:
        return sport in LIKELY_SERVER_PORTS and dport not in LIKELY_SERVER_PORTS
    return False
