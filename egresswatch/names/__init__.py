"""Naming destinations: passive DNS answers, TLS SNI and JA4, HTTP Host, QUIC SNI."""
