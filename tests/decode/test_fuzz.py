"""Any bytes in, facts or a counted reason out: the decoder never raises and never loops."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from egresswatch.decode import Fragment, FragmentReassembler, LinkType, PacketFacts, decode
from egresswatch.decode.tunnels import teredo_inner
from tests.packets import facts, handshake_and_close, tcp, udp

LINKTYPES = [int(t) for t in LinkType] + [12, 14, 147]
VALID = [
    bytes(p)
    for p in [*handshake_and_close(), udp(), tcp("S", src="2001:db8::1", dst="2001:db8::2")]
]


def _check(result: object) -> None:
    assert isinstance(result, PacketFacts | Fragment | str)
    if isinstance(result, PacketFacts):
        assert result.ip_bytes >= 0 and result.payload_len >= 0
        assert len(result.src) in (4, 16) and len(result.src) == len(result.dst)


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(LINKTYPES), st.integers(-1, 3000))
def test_random_bytes(frame: bytes, linktype: int, wire_len: int) -> None:
    _check(decode(frame, linktype, wire_len))


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(VALID), st.data())
def test_mutated_valid_packets(frame: bytes, data: st.DataObject) -> None:
    """Truncations and byte flips of real packets: the shapes malformed traffic really takes."""
    cut = data.draw(st.integers(0, len(frame)))
    mutated = bytearray(frame[:cut])
    for _ in range(data.draw(st.integers(0, 4))):
        if mutated:
            mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    result = decode(bytes(mutated), LinkType.ETHERNET, len(frame))
    _check(result)
    if isinstance(result, PacketFacts):
        teredo_inner(result)  # the tunnel probe reads payloads: it must tolerate garbage too


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 8191), st.booleans(), st.binary(max_size=64)), max_size=30)
)
def test_reassembly_of_arbitrary_fragments_is_bounded(
    pieces: list[tuple[int, bool, bytes]],
) -> None:
    reassembler = FragmentReassembler(max_datagrams=4)
    for offset, more, payload in pieces:
        frag = Fragment(b"\x01" * 4, b"\x02" * 4, 17, offset % 3, offset * 8, more, 20, payload)
        result = reassembler.add(frag, now=0.0)
        assert result is None or isinstance(result, PacketFacts | str)
    assert len(reassembler._pending) <= 4


def test_valid_packets_still_decode() -> None:
    """The fuzz corpus itself must decode, or the mutations above test nothing."""
    for frame in VALID:
        assert isinstance(decode(frame), PacketFacts)
    assert facts(udp()).dport == 53
