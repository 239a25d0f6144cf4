"""Packet sources: pcap/pcapng files (replay) and, later, live interfaces."""
