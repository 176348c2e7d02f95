"""CID vectors computed with js ``multiformats`` (``CID.parse(t).multihash``, ``toString``)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pstack.varint import encode_uvarint
from protocols.kad._cid import InvalidCid, cid_to_key, key_to_cid
from protocols.kad._types import KadError

HELLO_MH = bytes.fromhex("1220c7d01489080858c500065836c658f847a6ca67c4864619212be4f8200e4bbace")
QM_MH = bytes.fromhex("12209d6c2be50f706953479ab9df2ce3edca90b68053c00b3004b7f0accbe1e8eedf")
P2P_MH = b"\x12\x20" + hashlib.sha256(b"p2pstack").digest()


@pytest.mark.parametrize(
    ("text", "multihash"),
    [
        ("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", HELLO_MH),
        ("BAFKREIGH2AKISCAILDCQABSYG3DFR6CHU3FGPREGIYMSCK7E7AQA4S52ZY", HELLO_MH),
        ("k2cwuedmosc65hhh0bee97q5jx3fe55tiyqzep8vgds83agps9dof3da", HELLO_MH),
        ("K2CWUEDMOSC65HHH0BEE97Q5JX3FE55TIYQZEP8VGDS83AGPS9DOF3DA", HELLO_MH),
        ("zb2rhk6GMPQF3hfzwXTaNYFLKomMeC6UXdUt6jZKPpeVirLtV", HELLO_MH),
        ("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", QM_MH),
        ("bafybeie5nqv6kd3qnfjupgvz34woh3oksc3iau6abmyajn7qvtf6d2ho34", QM_MH),  # its v1, dag-pb
        ("k2jmtxvacy5p64u708sn9oawhfsizpcwgk1g59ckse0h1r7a2j7d0tlr", QM_MH),
        ("zdj7Wg2Qkk4mYgAkVU1kppfQ2sMGz5zPwERVpeWmxCQLDxVoC", QM_MH),
        ("bafkreifftye27oqjncy5s34qhmyzwbbjcmq72xktvmuobd44ajkdp4sgcq", P2P_MH),
        ("kiotji3c9", b"\x00\x02hi"),  # identity multihash
        ("bafkqaatine", b"\x00\x02hi"),
    ],
)
def test_cid_to_key(text: str, multihash: bytes) -> None:
    assert cid_to_key(text) == multihash


def test_key_to_cid() -> None:
    assert key_to_cid(HELLO_MH) == "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    assert key_to_cid(P2P_MH) == "bafkreifftye27oqjncy5s34qhmyzwbbjcmq72xktvmuobd44ajkdp4sgcq"
    assert key_to_cid(b"\x00\x02hi") == "bafkqaatine"
    assert (
        key_to_cid(QM_MH, codec=0x70)
        == "bafybeie5nqv6kd3qnfjupgvz34woh3oksc3iau6abmyajn7qvtf6d2ho34"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "b",
        "x" * 300,
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbd0",  # '0' is not base58
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbd",  # too short for v0, "Q" is no multibase
        "fbafkrei",  # base16 multibase: not supported
        "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52z",  # truncated digest
        "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zya",  # trailing byte
        "bAFKREIGH2AKISCAILDCQABSYG3DFR6CHU3FGPREGIYMSCK7E7AQA4S52ZY",  # mixed case
        "bafkre!gh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
        "k2cwuedmosc65hhh0bee97q5jx3fe55t_yqzep8vgds83agps9dof3da",  # int() would accept "_"
        "zb2rhk6GMPQF3hfzwXTaNYFLKomMeC6UXdUt6jZKPpeVirLt0",
        "b" + "ciqb",  # version 2
        "bqe",  # CID version varint truncated
        "z" + "1111",  # all zero bytes: version 0
    ],
)
def test_bad_cids_rejected(text: str) -> None:
    with pytest.raises(InvalidCid):
        cid_to_key(text)


def test_error_type() -> None:
    assert issubclass(InvalidCid, KadError)
    assert issubclass(InvalidCid, ValueError)


@pytest.mark.parametrize("multihash", [b"", b"\x12\x20abc", b"\x12", b"\x80"])
def test_key_to_cid_rejects_non_multihash(multihash: bytes) -> None:
    with pytest.raises(InvalidCid):
        key_to_cid(multihash)


@given(st.binary(max_size=64), st.integers(min_value=0, max_value=0x1FFFF))
def test_round_trip(digest: bytes, code: int) -> None:
    multihash = encode_uvarint(code) + encode_uvarint(len(digest)) + digest
    assert cid_to_key(key_to_cid(multihash)) == multihash


@given(st.text(max_size=80))
def test_any_text_gives_key_or_invalid_cid(text: str) -> None:
    try:
        cid_to_key(text)
    except InvalidCid:
        pass
