"""Packet sources: pcap/pcapng files (replay) and live interfaces (TPACKET_V3 rings, or dumpcap
and tshark for the packets that open, close or name a flow)."""
