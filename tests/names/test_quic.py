"""QUIC v1/v2 client Initials: RFC test vectors, the peer captures (checked against tshark), and
synthetic packets built by a small factory for reordering, coalescing, DCID switches and limits.

The factory encrypts with keys from ``client_initial_keys``, which the RFC vectors pin down, and is
itself checked by rebuilding the RFC 9001 A.2 packet byte for byte.
"""

from __future__ import annotations

import itertools
import json
import random
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.utils import rdpcap

from egresswatch.names.quic import (
    QUIC_V1,
    QUIC_V2,
    InitialCollector,
    client_initial_keys,
    crypto_frames,
    initial_packets,
    initial_version,
    unprotect,
)
from tests.conftest import SHARED

RFC_DCID = bytes.fromhex("8394c8f03e515708")

# RFC 9001 Appendix A.2 (and RFC 9369 Appendix A.2, which reuses it): the CRYPTO frame holding the
# client's ClientHello, padded with PADDING frames to a 1162-byte payload.
RFC_CRYPTO_FRAME = bytes.fromhex(
    """
    060040f1010000ed0303ebf8fa56f129 39b9584a3896472ec40bb863cfd3e868
    04fe3a47f06a2b69484c000004130113 02010000c000000010000e00000b6578
    616d706c652e636f6dff01000100000a 00080006001d00170018001000070005
    04616c706e0005000501000000000033 00260024001d00209370b2c9caa47fba
    baf4559fedba753de171fa71f50f1ce1 5d43e994ec74d748002b000302030400
    0d0010000e0403050306030203080408 050806002d00020101001c0002400100
    3900320408ffffffffffffffff050480 00ffff07048000ffff08011001048000
    75300901100f088394c8f03e51570806 048000ffff
    """
)

# RFC 9001 Appendix A.2: the protected client Initial, packet number 2.
RFC9001_CLIENT_INITIAL = bytes.fromhex(
    """
    c000000001088394c8f03e5157080000 449e7b9aec34d1b1c98dd7689fb8ec11
    d242b123dc9bd8bab936b47d92ec356c 0bab7df5976d27cd449f63300099f399
    1c260ec4c60d17b31f8429157bb35a12 82a643a8d2262cad67500cadb8e7378c
    8eb7539ec4d4905fed1bee1fc8aafba1 7c750e2c7ace01e6005f80fcb7df6212
    30c83711b39343fa028cea7f7fb5ff89 eac2308249a02252155e2347b63d58c5
    457afd84d05dfffdb20392844ae81215 4682e9cf012f9021a6f0be17ddd0c208
    4dce25ff9b06cde535d0f920a2db1bf3 62c23e596d11a4f5a6cf3948838a3aec
    4e15daf8500a6ef69ec4e3feb6b1d98e 610ac8b7ec3faf6ad760b7bad1db4ba3
    485e8a94dc250ae3fdb41ed15fb6a8e5 eba0fc3dd60bc8e30c5c4287e53805db
    059ae0648db2f64264ed5e39be2e20d8 2df566da8dd5998ccabdae053060ae6c
    7b4378e846d29f37ed7b4ea9ec5d82e7 961b7f25a9323851f681d582363aa5f8
    9937f5a67258bf63ad6f1a0b1d96dbd4 faddfcefc5266ba6611722395c906556
    be52afe3f565636ad1b17d508b73d874 3eeb524be22b3dcbc2c7468d54119c74
    68449a13d8e3b95811a198f3491de3e7 fe942b330407abf82a4ed7c1b311663a
    c69890f4157015853d91e923037c227a 33cdd5ec281ca3f79c44546b9d90ca00
    f064c99e3dd97911d39fe9c5d0b23a22 9a234cb36186c4819e8b9c5927726632
    291d6a418211cc2962e20fe47feb3edf 330f2c603a9d48c0fcb5699dbfe58964
    25c5bac4aee82e57a85aaf4e2513e4f0 5796b07ba2ee47d80506f8d2c25e50fd
    14de71e6c418559302f939b0e1abd576 f279c4b2e0feb85c1f28ff18f58891ff
    ef132eef2fa09346aee33c28eb130ff2 8f5b766953334113211996d20011a198
    e3fc433f9f2541010ae17c1bf202580f 6047472fb36857fe843b19f5984009dd
    c324044e847a4f4a0ab34f719595de37 252d6235365e9b84392b061085349d73
    203a4a13e96f5432ec0fd4a1ee65accd d5e3904df54c1da510b0ff20dcc0c77f
    cb2c0e0eb605cb0504db87632cf3d8b4 dae6e705769d1de354270123cb11450e
    fc60ac47683d7b8d0f811365565fd98c 4c8eb936bcab8d069fc33bd801b03ade
    a2e1fbc5aa463d08ca19896d2bf59a07 1b851e6c239052172f296bfb5e724047
    90a2181014f3b94a4e97d117b4381303 68cc39dbb2d198065ae3986547926cd2
    162f40a29f0c3c8745c0f50fba3852e5 66d44575c29d39a03f0cda721984b6f4
    40591f355e12d439ff150aab7613499d bd49adabc8676eef023b15b65bfc5ca0
    6948109f23f350db82123535eb8a7433 bdabcb909271a6ecbcb58b936a88cd4e
    8f2e6ff5800175f113253d8fa9ca8885 c2f552e657dc603f252e1a8e308f76f0
    be79e2fb8f5d5fbbe2e30ecadd220723 c8c0aea8078cdfcb3868263ff8f09400
    54da48781893a7e49ad5aff4af300cd8 04a6b6279ab3ff3afb64491c85194aab
    760d58a606654f9f4400e8b38591356f bf6425aca26dc85244259ff2b19c41b9
    f96f3ca9ec1dde434da7d2d392b905dd f3d1f9af93d1af5950bd493f5aa731b4
    056df31bd267b6b90a079831aaf579be 0a39013137aac6d404f518cfd4684064
    7e78bfe706ca4cf5e9c5453e9f7cfd2b 8b4c8d169a44e55c88d4a9a7f9474241
    e221af44860018ab0856972e194cd934
    """
)

# RFC 9369 Appendix A.2: the same payload as a QUIC v2 client Initial.
RFC9369_CLIENT_INITIAL = bytes.fromhex(
    """
    d76b3343cf088394c8f03e5157080000 449ea0c95e82ffe67b6abcdb4298b485
    dd04de806071bf03dceebfa162e75d6c 96058bdbfb127cdfcbf903388e99ad04
    9f9a3dd4425ae4d0992cfff18ecf0fdb 5a842d09747052f17ac2053d21f57c5d
    250f2c4f0e0202b70785b7946e992e58 a59ac52dea6774d4f03b55545243cf1a
    12834e3f249a78d395e0d18f4d766004 f1a2674802a747eaa901c3f10cda5500
    cb9122faa9f1df66c392079a1b40f0de 1c6054196a11cbea40afb6ef5253cd68
    18f6625efce3b6def6ba7e4b37a40f77 32e093daa7d52190935b8da58976ff33
    12ae50b187c1433c0f028edcc4c2838b 6a9bfc226ca4b4530e7a4ccee1bfa2a3
    d396ae5a3fb512384b2fdd851f784a65 e03f2c4fbe11a53c7777c023462239dd
    6f7521a3f6c7d5dd3ec9b3f233773d4b 46d23cc375eb198c63301c21801f6520
    bcfb7966fc49b393f0061d974a2706df 8c4a9449f11d7f3d2dcbb90c6b877045
    636e7c0c0fe4eb0f697545460c806910 d2c355f1d253bc9d2452aaa549e27a1f
    ac7cf4ed77f322e8fa894b6a83810a34 b361901751a6f5eb65a0326e07de7c12
    16ccce2d0193f958bb3850a833f7ae43 2b65bc5a53975c155aa4bcb4f7b2c4e5
    4df16efaf6ddea94e2c50b4cd1dfe060 17e0e9d02900cffe1935e0491d77ffb4
    fdf85290fdd893d577b1131a610ef6a5 c32b2ee0293617a37cbb08b847741c3b
    8017c25ca9052ca1079d8b78aebd4787 6d330a30f6a8c6d61dd1ab5589329de7
    14d19d61370f8149748c72f132f0fc99 f34d766c6938597040d8f9e2bb522ff9
    9c63a344d6a2ae8aa8e51b7b90a4a806 105fcbca31506c446151adfeceb51b91
    abfe43960977c87471cf9ad4074d30e1 0d6a7f03c63bd5d4317f68ff325ba3bd
    80bf4dc8b52a0ba031758022eb025cdd 770b44d6d6cf0670f4e990b22347a7db
    848265e3e5eb72dfe8299ad7481a4083 22cac55786e52f633b2fb6b614eaed18
    d703dd84045a274ae8bfa73379661388 d6991fe39b0d93debb41700b41f90a15
    c4d526250235ddcd6776fc77bc97e7a4 17ebcb31600d01e57f32162a8560cacc
    7e27a096d37a1a86952ec71bd89a3e9a 30a2a26162984d7740f81193e8238e61
    f6b5b984d4d3dfa033c1bb7e4f0037fe bf406d91c0dccf32acf423cfa1e70710
    10d3f270121b493ce85054ef58bada42 310138fe081adb04e2bd901f2f13458b
    3d6758158197107c14ebb193230cd115 7380aa79cae1374a7c1e5bbcb80ee23e
    06ebfde206bfb0fcbc0edc4ebec30966 1bdd908d532eb0c6adc38b7ca7331dce
    8dfce39ab71e7c32d318d136b6100671 a1ae6a6600e3899f31f0eed19e3417d1
    34b90c9058f8632c798d4490da498730 7cba922d61c39805d072b589bd52fdf1
    e86215c2d54e6670e07383a27bbffb5a ddf47d66aa85a0c6f9f32e59d85a44dd
    5d3b22dc2be80919b490437ae4f36a0a e55edf1d0b5cb4e9a3ecabee93dfc6e3
    8d209d0fa6536d27a5d6fbb17641cde2 7525d61093f1b28072d111b2b4ae5f89
    d5974ee12e5cf7d5da4d6a31123041f3 3e61407e76cffcdcfd7e19ba58cf4b53
    6f4c4938ae79324dc402894b44faf8af bab35282ab659d13c93f70412e85cb19
    9a37ddec600545473cfb5a05e08d0b20 9973b2172b4d21fb69745a262ccde96b
    a18b2faa745b6fe189cf772a9f84cbfc
    """
)

# The QUIC captures of the peer conformance set and the server name in each ClientHello.
CASES = {
    "zeek/quic-chromium": "api.cirrus-ci.com",
    "zeek/quicv2-echo": "localhost",
    "zeek/quic-multi-initial-frag-crypto": "googleads.g.doubleclick.net",
    "zeek/quic-ipv6-39264-rand": "tr6.snapchat.com",
    "suricata-verify/quic-ietf": "msquic.net",
    "suricata-verify/quic-frag-unordered": "mastodon.social",
}
# Cases with several client Initials: the ClientHello split across them, or retransmitted.
MULTI_PACKET = [
    "zeek/quicv2-echo",
    "zeek/quic-multi-initial-frag-crypto",
    "zeek/quic-ipv6-39264-rand",
    "suricata-verify/quic-frag-unordered",
]


# --- test-local readers and factories ------------------------------------------------------------


def server_name(message: bytes) -> str | None:
    """The host name in a ClientHello's server_name extension: deliberately independent of
    egresswatch.names.tls, so these tests check the QUIC layer alone."""
    assert message[0] == 0x01, "not a ClientHello"
    assert len(message) == 4 + int.from_bytes(message[1:4], "big"), "length field disagrees"
    pos = 4 + 2 + 32  # header, legacy_version, random
    pos += 1 + message[pos]  # legacy_session_id
    pos += 2 + int.from_bytes(message[pos : pos + 2], "big")  # cipher_suites
    pos += 1 + message[pos]  # legacy_compression_methods
    end = pos + 2 + int.from_bytes(message[pos : pos + 2], "big")
    assert end == len(message), "extensions do not end where the message does"
    pos += 2
    while pos < end:
        kind = int.from_bytes(message[pos : pos + 2], "big")
        size = int.from_bytes(message[pos + 2 : pos + 4], "big")
        body = message[pos + 4 : pos + 4 + size]
        pos += 4 + size
        if kind == 0:  # server_name: list length, name type 0 (host_name), name length, name
            assert body[2] == 0
            return body[5 : 5 + int.from_bytes(body[3:5], "big")].decode("ascii")
    return None


def client_hello(name: str, padding: int = 0) -> bytes:
    """A minimal ClientHello handshake message naming ``name``, grown by a padding extension."""
    host = name.encode()
    sni = (len(host) + 3).to_bytes(2, "big") + b"\x00" + len(host).to_bytes(2, "big") + host
    extensions = b"\x00\x00" + len(sni).to_bytes(2, "big") + sni
    extensions += b"\x00\x15" + padding.to_bytes(2, "big") + bytes(padding)
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    body += len(extensions).to_bytes(2, "big") + extensions
    return b"\x01" + len(body).to_bytes(3, "big") + body


def varint(value: int) -> bytes:
    if value < 1 << 6:
        return bytes([value])
    if value < 1 << 14:
        return (value | 0x4000).to_bytes(2, "big")
    if value < 1 << 30:
        return (value | 0x8000_0000).to_bytes(4, "big")
    return (value | 0xC000_0000_0000_0000).to_bytes(8, "big")


def crypto(offset: int, data: bytes) -> bytes:
    return b"\x06" + varint(offset) + varint(len(data)) + data


def protect(
    frames: bytes,
    *,
    dcid: bytes = RFC_DCID,
    key_dcid: bytes | None = None,
    pn: int = 0,
    pn_len: int = 2,
    version: int = QUIC_V1,
    kind: str = "initial",
) -> bytes:
    """A protected client long-header packet. ``key_dcid`` is the DCID the keys come from, when it
    differs from the one on the wire (a client that switched to the server's connection ID)."""
    keys = client_initial_keys(version, key_dcid or dcid)
    frames = frames.ljust(4, b"\x00")  # the header protection sample needs 20 bytes past the pn
    type_bits = {"initial": 0, "0rtt": 1, "handshake": 2}[kind] + (version == QUIC_V2)  # v2: +1
    first = 0xC0 | type_bits << 4 | (pn_len - 1)
    token = b"\x00" if kind == "initial" else b""
    length = (0x4000 | pn_len + len(frames) + 16).to_bytes(2, "big")
    head = version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid + b"\x00" + token + length
    pn_bytes = pn.to_bytes(pn_len, "big")
    nonce = bytes(a ^ b for a, b in zip(keys.iv, pn.to_bytes(12, "big"), strict=True))
    sealed = AESGCM(keys.key).encrypt(nonce, frames, bytes([first]) + head + pn_bytes)
    sample = sealed[4 - pn_len : 20 - pn_len]
    mask = Cipher(algorithms.AES(keys.hp), modes.ECB()).encryptor().update(sample)
    masked_pn = bytes(b ^ m for b, m in zip(pn_bytes, mask[1:], strict=False))
    return bytes([first ^ (mask[0] & 0x0F)]) + head + masked_pn + sealed


def collect(datagrams: list[bytes], limit: int = 65536) -> bytes | str | None:
    collector = InitialCollector(limit)
    result = None
    for datagram in datagrams:
        result = collector.add(datagram)
    return result


@cache
def client_payloads(case: str) -> list[bytes]:
    """The client-to-server UDP payloads of a capture's one connection, in capture order."""
    pcap = json.loads((SHARED / "peers" / "index.json").read_text())
    path = SHARED / "peers" / next(c["pcap"] for c in pcap["cases"] if c["id"] == case)
    payloads, client = [], None
    for frame in rdpcap(str(path)):
        if UDP not in frame:
            continue
        ip = frame[IP] if IP in frame else frame[IPv6]
        end = (ip.src, frame[UDP].sport)
        client = client or end  # the first sender opened the connection
        if end == client:
            payloads.append(bytes(frame[UDP].payload))
    return payloads


def tshark_server_names(pcap: Path) -> set[str]:
    if shutil.which("tshark") is None:
        pytest.fail("tshark is not installed (tests/run.sh installs it)")
    filters = ["-Y", "tls.handshake.type==1", "-T", "fields"]
    out = subprocess.run(
        ["tshark", "-r", str(pcap), *filters, "-e", "tls.handshake.extensions_server_name"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


# --- RFC test vectors ----------------------------------------------------------------------------


def test_rfc9001_client_initial_keys() -> None:
    keys = client_initial_keys(QUIC_V1, RFC_DCID)
    assert keys.key.hex() == "1f369613dd76d5467730efcbe3b1a22d"
    assert keys.iv.hex() == "fa044b2f42a3fd3b46fb255c"
    assert keys.hp.hex() == "9f50449e04a0e810283a1e9933adedd2"


def test_rfc9369_client_initial_keys_use_the_v2_salt_and_labels() -> None:
    keys = client_initial_keys(QUIC_V2, RFC_DCID)
    assert keys.key.hex() == "8b1a0bc121284290a29e0971b5cd045d"
    assert keys.iv.hex() == "91f73e2351d8fa91660e909f"
    assert keys.hp.hex() == "45b95e15235d6f45a6b19cbcb0294ba9"


@pytest.mark.parametrize(
    ("packet", "version"),
    [(RFC9001_CLIENT_INITIAL, QUIC_V1), (RFC9369_CLIENT_INITIAL, QUIC_V2)],
    ids=["rfc9001", "rfc9369"],
)
def test_rfc_client_initial_decrypts_to_the_crypto_frame_shown(packet: bytes, version: int) -> None:
    assert len(packet) == 1200
    assert initial_version(packet) == version
    [initial] = initial_packets(packet)
    assert initial.dcid == RFC_DCID
    opened = unprotect(initial, client_initial_keys(version, RFC_DCID))
    assert opened is not None
    pn, frames = opened
    assert pn == 2
    assert len(frames) == 1162
    assert frames == RFC_CRYPTO_FRAME.ljust(1162, b"\x00")
    assert crypto_frames(frames) == [(0, RFC_CRYPTO_FRAME[4:])]


@pytest.mark.parametrize(
    "packet", [RFC9001_CLIENT_INITIAL, RFC9369_CLIENT_INITIAL], ids=["rfc9001", "rfc9369"]
)
def test_rfc_client_initial_yields_its_client_hello(packet: bytes) -> None:
    message = InitialCollector().add(packet)
    assert message == RFC_CRYPTO_FRAME[4:]
    assert isinstance(message, bytes) and server_name(message) == "example.com"


def test_rfc_client_initial_does_not_open_with_the_other_versions_keys() -> None:
    [initial] = initial_packets(RFC9001_CLIENT_INITIAL)
    assert unprotect(initial, client_initial_keys(QUIC_V2, RFC_DCID)) is None


def test_test_factory_rebuilds_the_rfc9001_packet_exactly() -> None:
    """The factory below the RFC tests is trustworthy only if it reproduces the RFC's bytes."""
    frames = RFC_CRYPTO_FRAME.ljust(1162, b"\x00")
    packet = protect(frames, pn=2, pn_len=4)
    assert packet == RFC9001_CLIENT_INITIAL


# --- initial_version -----------------------------------------------------------------------------


def test_initial_version_rejects_what_is_not_a_v1_or_v2_initial() -> None:
    assert initial_version(b"") is None
    assert initial_version(RFC9001_CLIENT_INITIAL[:6]) is None
    assert initial_version(b"\x40" + RFC9001_CLIENT_INITIAL[1:]) is None  # short header
    draft29 = RFC9001_CLIENT_INITIAL[:1] + b"\xff\x00\x00\x1d" + RFC9001_CLIENT_INITIAL[5:]
    assert initial_version(draft29) is None
    assert initial_version(protect(b"\x01", kind="handshake")) is None
    assert initial_version(protect(b"\x01", kind="0rtt", version=QUIC_V2)) is None
    long_dcid = RFC9001_CLIENT_INITIAL[:5] + b"\x15" + RFC9001_CLIENT_INITIAL[6:]
    assert initial_version(long_dcid) is None  # v1 connection IDs are at most 20 bytes


def test_initial_version_reads_v2_type_bits() -> None:
    """v2 moved the Initial type to 0b01; 0b00 is a v2 Retry and 0b01 a v1 0-RTT packet."""
    v2_as_v1_type = bytes([RFC9369_CLIENT_INITIAL[0] & 0xCF]) + RFC9369_CLIENT_INITIAL[1:]
    assert initial_version(v2_as_v1_type) is None
    v1_with_v2_type = bytes([RFC9001_CLIENT_INITIAL[0] | 0x10]) + RFC9001_CLIENT_INITIAL[1:]
    assert initial_version(v1_with_v2_type) is None
    assert initial_version(protect(b"\x01", version=QUIC_V2)) == QUIC_V2


# --- the peer captures ---------------------------------------------------------------------------


def test_cases_agree_with_the_peer_index(peers: Path) -> None:
    index = {c["id"]: c for c in json.loads((peers / "index.json").read_text())["cases"]}
    for case, name in CASES.items():
        assert index[case]["expected"]["quic_sni"] == [name]


@pytest.mark.parametrize("case", list(CASES))
def test_capture_yields_the_client_hello_naming_the_server(case: str) -> None:
    datagrams = client_payloads(case)
    assert initial_version(datagrams[0]) in (QUIC_V1, QUIC_V2)
    message = collect(datagrams)
    assert isinstance(message, bytes), message
    assert server_name(message) == CASES[case]


@pytest.mark.parametrize("case", MULTI_PACKET)
def test_capture_in_reversed_order_yields_the_same_client_hello(case: str) -> None:
    datagrams = client_payloads(case)
    assert collect(datagrams[::-1]) == collect(datagrams)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(MULTI_PACKET), st.randoms(use_true_random=False))
def test_capture_in_any_order_yields_the_same_client_hello(case: str, rng: random.Random) -> None:
    datagrams = list(client_payloads(case))
    expected = collect(datagrams)
    rng.shuffle(datagrams)
    assert collect(datagrams) == expected


@pytest.mark.tshark
@pytest.mark.parametrize("case", list(CASES))
def test_capture_server_name_matches_tshark(case: str, peers: Path) -> None:
    index = {c["id"]: c for c in json.loads((peers / "index.json").read_text())["cases"]}
    message = collect(client_payloads(case))
    assert isinstance(message, bytes), message
    assert tshark_server_names(peers / index[case]["pcap"]) == {server_name(message)}


# --- synthetic packets: reassembly, coalescing, connection IDs -----------------------------------


HELLO = client_hello("split.example", padding=3000)


def test_crypto_split_over_packets_out_of_order_and_overlapping() -> None:
    pieces = [(0, HELLO[:900]), (1500, HELLO[1500:]), (800, HELLO[800:1600]), (10, HELLO[10:20])]
    packets = [protect(crypto(off, data), pn=pn) for pn, (off, data) in enumerate(pieces)]
    collector = InitialCollector()
    assert [collector.add(p) for p in packets[::-1]] == [None, None, None, HELLO]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_split_order_and_overlap_reassembles_the_exact_client_hello(
    data: st.DataObject,
) -> None:
    hello = client_hello("any.example", padding=data.draw(st.integers(0, 2500)))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(hello)), max_size=12)))
    bounds = [0, *cuts, len(hello)]
    pieces = [(a, hello[a:b]) for a, b in itertools.pairwise(bounds) if b > a]
    extra = data.draw(st.lists(st.tuples(st.integers(0, len(hello)), st.integers(1, 400))))
    pieces += [(a, hello[a : a + n]) for a, n in extra]  # retransmitted, overlapping ranges
    order = data.draw(st.permutations(pieces))
    per_packet = data.draw(st.integers(1, 4))
    packets = [
        protect(b"".join(crypto(off, piece) for off, piece in order[i : i + per_packet]), pn=i)
        for i in range(0, len(order), per_packet)
    ]
    assert collect(packets) == hello


def test_coalesced_packets_are_walked_by_their_length_fields() -> None:
    handshake = protect(b"\x01" * 40, kind="handshake", pn=0)
    first = protect(crypto(0, HELLO[:2000]), pn=0)
    second = protect(crypto(2000, HELLO[2000:]), pn=1)
    trailing_short_header = b"\x40" + bytes(30)
    assert collect([handshake + first + second + trailing_short_header]) == HELLO


def test_non_initial_packets_alone_never_complete() -> None:
    zero_rtt = protect(crypto(0, HELLO), kind="0rtt")
    handshake = protect(crypto(0, HELLO), kind="handshake")
    assert collect([zero_rtt, handshake, b"\x41" + bytes(40)]) is None


def test_v2_initials_are_collected() -> None:
    packets = [
        protect(crypto(0, HELLO[:1000]), version=QUIC_V2, pn=0),
        protect(crypto(1000, HELLO[1000:]), version=QUIC_V2, pn=1),
    ]
    assert collect(packets) == HELLO


def test_switched_dcid_keeps_the_original_keys() -> None:
    server_cid = bytes.fromhex("f067a5502a4262b5")
    first = protect(crypto(0, HELLO[:1000]), pn=0)
    later = protect(crypto(1000, HELLO[1000:]), dcid=server_cid, key_dcid=RFC_DCID, pn=1)
    assert collect([first, later]) == HELLO


def test_switched_dcid_packet_arriving_first_is_kept_until_keys_are_known() -> None:
    server_cid = bytes.fromhex("f067a5502a4262b5")
    later = protect(crypto(1000, HELLO[1000:]), dcid=server_cid, key_dcid=RFC_DCID, pn=1)
    first = protect(crypto(0, HELLO[:1000]), pn=0)
    assert collect([later, first]) == HELLO


def test_dcid_after_retry_brings_its_own_keys() -> None:
    retry_cid = bytes.fromhex("0badc0ffee")
    first = protect(crypto(0, HELLO[:1000]), pn=0)
    after_retry = protect(crypto(1000, HELLO[1000:]), dcid=retry_cid, pn=1)
    assert collect([first, after_retry]) == HELLO


def test_v2_initials_after_compatible_negotiation_use_the_original_dcid() -> None:
    """RFC 9368: a client that moves from v1 to v2 keeps its original DCID for key derivation."""
    server_cid = bytes.fromhex("f067a5502a4262b5")
    first = protect(crypto(0, HELLO[:1000]), pn=0)
    later = protect(
        crypto(1000, HELLO[1000:]), dcid=server_cid, key_dcid=RFC_DCID, version=QUIC_V2, pn=1
    )
    assert collect([first, later]) == HELLO


def test_frames_an_initial_may_carry_are_read_past() -> None:
    # Field values that are not frame types an Initial may carry: reading one as a frame would stop
    # the parse before the CRYPTO frame, so a field skipped wrongly shows.
    ack = b"\x02" + varint(900) + varint(25) + varint(1) + varint(3) + varint(7) + varint(9)
    ack_ecn = b"\x03" + varint(900) + varint(25) + varint(0) + varint(3) + varint(300) * 3
    close = b"\x1c" + varint(0) + varint(6) + varint(3) + b"bye"
    frames = b"\x00\x00\x01" + ack + ack_ecn + close + crypto(0, HELLO)
    assert collect([protect(frames)]) == HELLO


def test_reading_stops_at_a_frame_an_initial_may_not_carry() -> None:
    stream_frame = b"\x08" + varint(0) + b"data"
    assert collect([protect(stream_frame + crypto(0, HELLO))]) is None
    assert collect([protect(crypto(0, HELLO) + stream_frame)]) == HELLO


def test_broken_frame_in_an_authentic_packet_is_malformed() -> None:
    truncated = b"\x06" + varint(0) + varint(500) + HELLO[:100]
    assert collect([protect(truncated)]) == "quic_malformed"
    assert collect([protect(b"\x02" + varint(5) + varint(0) + varint(9))]) == "quic_malformed"


def test_first_handshake_message_must_be_a_client_hello() -> None:
    server_hello = b"\x02" + HELLO[1:]
    assert collect([protect(crypto(0, server_hello))]) == "quic_malformed"


# --- limits and final results --------------------------------------------------------------------


def test_client_hello_longer_than_the_limit_is_too_large() -> None:
    assert collect([protect(crypto(0, HELLO[:10]))], limit=1000) == "quic_too_large"
    assert collect([protect(crypto(5000, b"x"))], limit=1000) == "quic_too_large"
    assert collect([protect(crypto(0, HELLO))], limit=len(HELLO)) == HELLO


def test_too_many_separate_pieces_is_too_fragmented() -> None:
    frames = b"".join(crypto(offset, HELLO[offset : offset + 1]) for offset in range(2, 140, 2))
    assert collect([protect(frames)]) == "quic_too_fragmented"


def test_packets_no_keys_open_end_as_undecryptable() -> None:
    garbage = [protect(crypto(0, HELLO), key_dcid=bytes([n]) * 8, pn=n) for n in range(1, 18)]
    collector = InitialCollector()
    assert [collector.add(p) for p in garbage][-2:] == [None, "quic_undecryptable"]


def test_datagrams_without_a_client_hello_end_the_wait() -> None:
    collector = InitialCollector()
    assert {collector.add(b"\x40" + bytes(30)) for _ in range(127)} == {None}
    assert collector.add(b"\x40" + bytes(30)) == "quic_no_client_hello"


def test_packets_kept_for_retry_stay_within_the_limit() -> None:
    collector = InitialCollector(limit=3000)
    for n in range(1, 17):
        packet = protect(crypto(0, HELLO).ljust(1200, b"\x00"), key_dcid=bytes([n]) * 8, pn=n)
        assert collector.add(packet) is None
        assert collector.buffered <= 3000


def test_final_result_is_returned_again_without_work() -> None:
    collector = InitialCollector()
    message = collector.add(RFC9001_CLIENT_INITIAL)
    assert collector.add(b"") is message
    assert collector.add(protect(crypto(0, HELLO))) is message
    assert collector.buffered == 0


# --- fuzzing: never an exception, memory bounded -------------------------------------------------


def check(collector: InitialCollector, result: object, limit: int) -> None:
    assert result is None or isinstance(result, bytes | str)
    if isinstance(result, bytes):
        assert result[0] == 0x01 and len(result) == 4 + int.from_bytes(result[1:4], "big")
        assert len(result) <= limit
    assert collector.buffered <= 2 * limit


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.binary(max_size=1500), max_size=6))
def test_random_datagrams(datagrams: list[bytes]) -> None:
    collector = InitialCollector()
    for datagram in datagrams:
        check(collector, collector.add(datagram), 65536)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([QUIC_V1, QUIC_V2]), st.binary(max_size=20))
def test_random_header_after_a_valid_prefix(tail: bytes, version: int, dcid: bytes) -> None:
    """Garbage where the header fields are: lengths, tokens and varints that run off the end."""
    prefix = (0xC0 | (version == QUIC_V2) << 4).to_bytes(1, "big") + version.to_bytes(4, "big")
    collector = InitialCollector()
    check(collector, collector.add(prefix + bytes([len(dcid)]) + dcid + tail), 65536)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600), st.integers(0, 3000))
def test_random_frames_in_authentic_packets(frames: bytes, limit: int) -> None:
    collector = InitialCollector(limit)
    check(collector, collector.add(protect(frames)), limit)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 300)), max_size=80),
    st.integers(0, 4000),
)
def test_arbitrary_crypto_pieces_stay_bounded(pieces: list[tuple[int, int]], limit: int) -> None:
    collector = InitialCollector(limit)
    for pn, (offset, size) in enumerate(pieces):
        check(
            collector,
            collector.add(protect(crypto(offset, HELLO[offset : offset + size]), pn=pn)),
            limit,
        )


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(list(CASES)), st.data())
def test_mutated_real_initials_give_the_true_client_hello_or_nothing(
    case: str, data: st.DataObject
) -> None:
    """Flipped bytes and truncations of real datagrams: the AEAD tag means a result, if any, is
    still the genuine ClientHello."""
    datagrams = list(client_payloads(case))
    expected = collect(datagrams)
    index = data.draw(st.integers(0, len(datagrams) - 1))
    mutated = bytearray(datagrams[index][: data.draw(st.integers(0, len(datagrams[index])))])
    for _ in range(data.draw(st.integers(0, 3))):
        if mutated:
            mutated[data.draw(st.integers(0, len(mutated) - 1))] ^= data.draw(st.integers(1, 255))
    datagrams[index] = bytes(mutated)
    collector = InitialCollector()
    for datagram in datagrams:
        result = collector.add(datagram)
        check(collector, result, 65536)
    assert result in (expected, None) or isinstance(result, str)
