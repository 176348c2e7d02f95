import math

import pytest

from protocols.membership import (
    MemberState,
    MessageTooLarge,
    Metadata,
    MetadataTooLarge,
    SwimProtocolError,
    WireLimits,
    decode_message,
    encode_message,
)
from protocols.membership._wire import (
    Ack,
    Alive,
    Dead,
    Leave,
    MemberRecord,
    Message,
    Nack,
    Ping,
    PingReq,
    PushPull,
    Suspect,
    alive_payload,
    broadcast_size,
    encode_broadcast,
    leave_payload,
)
from tests.protocols.membership._net import peer

A, B = peer(1), peer(2)
LIMITS = WireLimits()


def _alive(meta: Metadata | None = None) -> Alive:
    return Alive(A, 7, (b"\x04\x7f\x00\x00\x01",), meta or Metadata(1.5, {"k": b"v"}), b"sig")


def test_ping_literal_bytes() -> None:
    data = encode_message(Message(Ping(5, B)), max_size=1024)
    target = B.to_bytes()
    # field 1 (ping), length; inside: seq=5 (08 05), target (12 len ...)
    assert data == bytes([0x0A, 2 + 2 + len(target), 0x08, 0x05, 0x12, len(target)]) + target
    assert decode_message(data, LIMITS) == Message(Ping(5, B))


def test_ack_and_empty_gossip_bytes() -> None:
    assert encode_message(Message(Ack(1)), max_size=16) == b"\x12\x02\x08\x01"
    assert decode_message(b"", LIMITS) == Message(None)


@pytest.mark.parametrize(
    "message",
    [
        Message(Ack(3), (_alive(), Suspect(A, 2, B), Dead(B, 9, A), Leave(A, 4, b"s"))),
        Message(PingReq(2**32 - 1, A)),
        Message(Nack(0)),
        Message(
            PushPull(
                True,
                False,
                (
                    MemberRecord(_alive(), MemberState.LEFT, 8, b"ls"),
                    MemberRecord(_alive(), MemberState.SUSPECT, 7),
                ),
            )
        ),
        Message(None, (_alive(Metadata()),)),
    ],
)
def test_roundtrip(message: Message) -> None:
    assert decode_message(encode_message(message, max_size=1 << 16), LIMITS) == message


def test_broadcast_size_counts_its_bytes() -> None:
    claims = (_alive(), Suspect(A, 2, B))
    data = encode_message(Message(None, claims), max_size=4096)
    assert len(data) == sum(broadcast_size(c) for c in claims)


def test_size_bounds() -> None:
    message = Message(None, (_alive(),) * 10)
    with pytest.raises(MessageTooLarge):
        encode_message(message, max_size=100)
    data = encode_message(message, max_size=4096)
    with pytest.raises(MessageTooLarge):
        decode_message(data, WireLimits(max_size=len(data) - 1))


def test_metadata_bounds() -> None:
    big = _alive(Metadata(0.0, {"x": b"\0" * 600}))
    data = encode_message(Message(None, (big,)), max_size=4096)
    with pytest.raises(MetadataTooLarge):
        decode_message(data, LIMITS)
    assert decode_message(data, WireLimits(max_metadata_size=700)).broadcasts == (big,)


def test_non_finite_load_refused() -> None:
    data = encode_message(Message(None, (_alive(Metadata(math.nan)),)), max_size=4096)
    with pytest.raises(SwimProtocolError, match="finite"):
        decode_message(data, LIMITS)


def test_too_many_addresses_refused() -> None:
    a = Alive(A, 1, (b"\x04\x7f\x00\x00\x01",) * 9, Metadata(), b"")
    data = encode_message(Message(None, (a,)), max_size=4096)
    with pytest.raises(SwimProtocolError, match="addresses"):
        decode_message(data, LIMITS)


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\x03\x12\x01\x00",  # ping with a one-byte peer ID
        b"\xff\xff",  # truncated tag
        b"\x7a\x00",  # an empty broadcast
        b"\x2a\x02\x1a\x00",  # push-pull record without an alive claim
        b"\x0a\x05\x08",  # length past the end
    ],
)
def test_malformed_refused(data: bytes) -> None:
    with pytest.raises(SwimProtocolError):
        decode_message(data, LIMITS)


def test_signed_payloads_are_canonical() -> None:
    one = alive_payload(A, 1, (), Metadata(0.0, {"a": b"1", "b": b"2"}))
    two = alive_payload(A, 1, (), Metadata(0.0, {"b": b"2", "a": b"1"}))
    assert one == two
    assert one.startswith(b"/p2pstack/swim/1.0.0/alive\n")
    assert alive_payload(A, 2, (), Metadata()) != alive_payload(A, 1, (), Metadata())
    assert leave_payload(A, 3) == b"/p2pstack/swim/1.0.0/leave\n" + bytes(
        [len(A.to_bytes())]
    ) + A.to_bytes() + (b"\0" * 7 + b"\x03")


def test_pre_encoded_broadcasts_follow_the_message_ones() -> None:
    later = (Suspect(B, 1, A), Dead(A, 2, B))
    data = encode_message(
        Message(Ack(9), (_alive(),)), max_size=4096, encoded=[encode_broadcast(b) for b in later]
    )
    assert decode_message(data, LIMITS) == Message(Ack(9), (_alive(), *later))
    with pytest.raises(MessageTooLarge):
        encode_message(Message(None), max_size=10, encoded=[encode_broadcast(later[0])])


def test_cached_alive_payload_keeps_equal_but_differently_encoded_values_apart() -> None:
    # 0.0 == -0.0 (same hash), but the signature covers the IEEE-754 bytes.
    plus = alive_payload(A, 1, (b"\x01",), Metadata(0.0))
    minus = alive_payload(A, 1, (b"\x01",), Metadata(-0.0))
    # ... load (8 bytes), then the entry count (0).
    assert plus.endswith(b"\x00" * 8 + b"\x00")
    assert minus.endswith(b"\x80" + b"\x00" * 7 + b"\x00")
    # Addresses given as a list (unhashable) give the same bytes as the tuple.
    assert alive_payload(A, 1, [b"\x01"], Metadata(0.0)) == plus  # type: ignore[arg-type]  # a list where a tuple is declared: the payload must not depend on it
