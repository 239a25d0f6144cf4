"""JA4 from ClientHello fields: FoxIO's published vectors, the spec's rules, and its invariants.

Vectors (lists as offered on the wire; the expected values are FoxIO's):
- the worked example of FoxIO-LLC/ja4 ``technical_details/JA4.md`` (also the TCP stream of
  ``chrome-cloudflare-quic-with-secrets.pcapng`` in ``python/test/testdata``, whose JA4_ro gives
  the original order);
- ``sigalg-grease.pcapng`` (``python/test/testdata/sigalg-grease.pcapng.json`` JA4_ro, the same
  JA4 in ``zeek/testing/Baseline/tests.ja4-tls-grease/output`` and the Rust snapshot);
- the QUIC stream of ``chrome-cloudflare-quic-with-secrets.pcapng`` (``rust/ja4/src/snapshots``
  and ``zeek/testing/Baseline/tests.ja4-tls/output``); its sorted raw lists are quoted by a
  third-party implementation's changelog and hash to FoxIO's value.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egresswatch.names.ja4 import is_grease, ja4, ja4_r

GREASE = [0x0A0A + 0x1010 * i for i in range(16)]
TLS13 = 0x0304
TLS12 = 0x0303

CHROME_CIPHERS = [
    0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013, 0xC014,
    0x009C, 0x009D, 0x002F, 0x0035,
]  # fmt: skip
SPEC_EXTENSIONS = [
    0x001B, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002D, 0x000D, 0x0005, 0x0023, 0x0012,
    0x002B, 0xFF01, 0x000B, 0x000A, 0x0015,
]  # fmt: skip
SPEC_SIGNATURE_ALGORITHMS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]

SIGALG_GREASE_EXTENSIONS = [
    0xFE0D, 0x0010, 0x0017, 0x0033, 0x44CD, 0xFF01, 0x000A, 0x000D, 0x0023, 0x002B, 0x000B,
    0xCA34, 0x002D, 0x0000, 0x0005, 0x001B, 0x0012,
]  # fmt: skip
SIGALG_GREASE_ALGORITHMS = [
    0x0904, 0x0905, 0x0906, 0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
]  # fmt: skip

QUIC_EXTENSIONS = [0x000A, 0x000D, 0x001B, 0x002B, 0x002D, 0x0033, 0x0039, 0x4469, 0x0000, 0x0010]
QUIC_SIGNATURE_ALGORITHMS = [*SPEC_SIGNATURE_ALGORITHMS, 0x0201]


def test_spec_worked_example() -> None:
    args = ("t", TLS12, [TLS13], CHROME_CIPHERS, SPEC_EXTENSIONS, b"h2", SPEC_SIGNATURE_ALGORITHMS)
    assert ja4(*args) == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    assert ja4_r(*args) == (
        "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9"
        "_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01"
        "_0403,0804,0401,0503,0805,0501,0806,0601"
    )


def test_no_signature_algorithms_means_no_trailing_underscore() -> None:
    # The spec: "0005,000a,...,4469,ff01 = 6d807ffa2a79".
    extensions = [e for e in SPEC_EXTENSIONS if e != 0x000D] + [0x000D]
    fingerprint = ja4("t", TLS12, [TLS13], CHROME_CIPHERS, extensions, b"h2", [])
    assert fingerprint.endswith("_6d807ffa2a79")
    assert not ja4_r("t", TLS12, [TLS13], CHROME_CIPHERS, extensions, b"h2", []).endswith("_")


def test_foxio_chrome_tcp_stream_in_original_order() -> None:
    extensions = [
        0x0000, 0x0017, 0xFF01, 0x000A, 0x000B, 0x0023, 0x0010, 0x0005, 0x000D, 0x0012, 0x0033,
        0x002D, 0x002B, 0x001B, 0x4469, 0x0015,
    ]  # fmt: skip
    fingerprint = ja4(
        "t", TLS12, [TLS13], CHROME_CIPHERS, extensions, b"h2", SPEC_SIGNATURE_ALGORITHMS
    )
    assert fingerprint == "t13d1516h2_8daaf6152771_e5627efa2ab1"


def test_foxio_sigalg_grease_capture() -> None:
    algorithms = [0x5A5A, *SIGALG_GREASE_ALGORITHMS]
    fingerprint = ja4(
        "t",
        TLS12,
        [0x7A7A, TLS13, TLS12],
        [0x3A3A, *CHROME_CIPHERS],
        [0x2A2A, *SIGALG_GREASE_EXTENSIONS, 0x9A9A],
        b"h2",
        algorithms,
    )
    assert fingerprint == "t13d1517h2_8daaf6152771_cb7bf5808d99"


def test_foxio_quic_capture() -> None:
    fingerprint = ja4(
        "q",
        TLS12,
        [TLS13],
        [0x1301, 0x1302, 0x1303],
        QUIC_EXTENSIONS,
        b"h3",
        QUIC_SIGNATURE_ALGORITHMS,
    )
    assert fingerprint == "q13d0310h3_55b375c5d22e_cd85d2d88918"


def test_empty_lists_hash_to_twelve_zeros() -> None:
    assert ja4("t", TLS12, [], [], [], None, []) == "t12i000000_000000000000_000000000000"


def test_only_sni_and_alpn_leave_the_extension_hash_empty_but_are_counted() -> None:
    fingerprint = ja4("t", TLS12, [], [0x002F], [0x0000, 0x0010], b"http/1.1", [])
    assert fingerprint.startswith("t12d0102h1_")
    assert fingerprint.endswith("_000000000000")


@pytest.mark.parametrize(
    ("legacy", "supported", "expected"),
    [
        (TLS12, [TLS13, TLS12], "13"),
        (TLS12, [0x1A1A, TLS12, 0x0302], "12"),  # GREASE is not the highest version
        (TLS12, [0xFAFA], "12"),  # nothing but GREASE: the legacy field decides
        (0x0301, [], "10"),
        (0x0302, [], "11"),
        (0x0300, [], "s3"),
        (0x0200, [], "s2"),
        (0x0002, [], "s2"),
        (0x0100, [], "s1"),
        (0xFEFD, [], "d2"),
        (TLS12, [0x7F17, TLS12], "00"),  # TLS 1.3 draft 23 is the highest: unknown to JA4
        (0x1234, [], "00"),
    ],
)
def test_version(legacy: int, supported: list[int], expected: str) -> None:
    assert ja4("t", legacy, supported, [], [], None, [])[1:3] == expected


def test_counts_are_capped_at_99() -> None:
    many = list(range(1, 150))
    assert ja4("t", TLS12, [], many, many, None, [])[4:8] == "9999"


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        (b"h2", "h2"),
        (b"http/1.1", "h1"),
        (b"h3", "h3"),
        (b"a", "aa"),  # a single character is both the first and the last
        (b"", "00"),
        (None, "00"),
        # The spec's examples for a non-alphanumeric first or last byte.
        (b"\xab", "ab"),
        (b"\xab\xcd", "ad"),
        (b"\x30\xab", "3b"),
        (b"\x30\x31\xab\xcd", "3d"),
        (b"\x30\xab\xcd\x31", "01"),
    ],
)
def test_alpn_characters(first: bytes | None, expected: str) -> None:
    assert ja4("t", TLS12, [], [], [], first, [])[8:10] == expected


def test_grease_values_are_exactly_the_sixteen_of_rfc_8701() -> None:
    assert [v for v in range(0x10000) if is_grease(v)] == GREASE


def test_transport_letter_is_the_only_difference_between_tcp_and_quic() -> None:
    args = (TLS12, [TLS13], [0x1301], QUIC_EXTENSIONS, b"h3", QUIC_SIGNATURE_ALGORITHMS)
    tcp, quic = ja4("t", *args), ja4("q", *args)
    assert (tcp[0], quic[0]) == ("t", "q")
    assert tcp[1:] == quic[1:]


def test_signature_algorithm_order_matters() -> None:
    args = ("t", TLS12, [TLS13], CHROME_CIPHERS, SPEC_EXTENSIONS, b"h2")
    reordered = list(reversed(SPEC_SIGNATURE_ALGORITHMS))
    assert ja4(*args, SPEC_SIGNATURE_ALGORITHMS) != ja4(*args, reordered)


codes = st.lists(st.integers(0, 0xFFFF).filter(lambda v: not is_grease(v)), max_size=30)


@settings(max_examples=300, deadline=None)
@given(codes, codes, codes, codes, st.data())
def test_grease_anywhere_does_not_change_the_fingerprint(
    ciphers: list[int],
    extensions: list[int],
    algorithms: list[int],
    versions: list[int],
    data: st.DataObject,
) -> None:
    def greased(values: list[int]) -> list[int]:
        out = list(values)
        for _ in range(data.draw(st.integers(0, 3))):
            out.insert(data.draw(st.integers(0, len(out))), data.draw(st.sampled_from(GREASE)))
        return out

    plain = ja4("t", TLS12, versions, ciphers, extensions, b"h2", algorithms)
    noisy = ja4(
        "t",
        TLS12,
        greased(versions),
        greased(ciphers),
        greased(extensions),
        b"h2",
        greased(algorithms),
    )
    assert noisy == plain


@settings(max_examples=300, deadline=None)
@given(codes, codes, st.randoms(use_true_random=False))
def test_cipher_and_extension_order_does_not_change_the_fingerprint(
    ciphers: list[int], extensions: list[int], rng: random.Random
) -> None:
    shuffled_ciphers, shuffled_extensions = list(ciphers), list(extensions)
    rng.shuffle(shuffled_ciphers)
    rng.shuffle(shuffled_extensions)
    algorithms = SPEC_SIGNATURE_ALGORITHMS
    assert ja4("t", TLS12, [], ciphers, extensions, None, algorithms) == ja4(
        "t", TLS12, [], shuffled_ciphers, shuffled_extensions, None, algorithms
    )


@settings(max_examples=300, deadline=None)
@given(codes, codes, codes, st.binary(max_size=8) | st.none())
def test_fingerprint_shape(
    ciphers: list[int], extensions: list[int], algorithms: list[int], alpn: bytes | None
) -> None:
    fingerprint = ja4("q", TLS12, [], ciphers, extensions, alpn, algorithms)
    a, b, c = fingerprint.split("_")
    assert len(a) == 10 and a.isascii() and a.isalnum()
    assert len(b) == len(c) == 12 and all(ch in "0123456789abcdef" for ch in b + c)
