"""The DCUtR sans-IO cores and wire format, with literal bytes from the schema."""

from __future__ import annotations

import pytest
from multiaddr import Multiaddr

from p2pstack.errors import LocalProtocolError
from protocols.dcutr import (
    MAX_ADDRS,
    AddressPolicy,
    DcutrMessage,
    DialRequested,
    InitiatorCore,
    MalformedMessageError,
    MessageType,
    ResponderCore,
    UnexpectedMessageError,
    UpgradeFailed,
    decode_message,
    encode_message,
)

PUBLIC_A = Multiaddr("/ip4/1.2.3.4/tcp/4001")
PUBLIC_B = Multiaddr("/ip4/5.6.7.8/udp/4001/quic-v1")
PRIVATE = Multiaddr("/ip4/192.168.1.2/tcp/4001")
LOOPBACK = Multiaddr("/ip4/127.0.0.1/tcp/4001")


def test_sync_literal_bytes() -> None:
    # type=1 varint 300 -> 08 ac 02; the length prefix 03.
    assert encode_message(DcutrMessage(MessageType.SYNC)) == bytes.fromhex("0308ac02")
    assert decode_message(bytes.fromhex("08ac02")) == DcutrMessage(MessageType.SYNC)


def test_connect_literal_bytes() -> None:
    raw = PUBLIC_A.to_bytes()
    body = bytes([0x08, 100, 0x12, len(raw)]) + raw
    assert (
        encode_message(DcutrMessage(MessageType.CONNECT, (PUBLIC_A,))) == bytes([len(body)]) + body
    )
    assert decode_message(body).addrs == (PUBLIC_A,)


@pytest.mark.parametrize(
    "body",
    [b"\x08\x05", b"", b"\xff\xff\xff", b"\x12\x02\x04\x01", b"\x08\xc8\x01"],
    ids=["unknown-type", "no-type", "garbage", "no-type-with-addr", "type-200"],
)
def test_malformed_messages(body: bytes) -> None:
    with pytest.raises(MalformedMessageError):
        decode_message(body)


def test_bogus_addresses_are_dropped_and_counted() -> None:
    entries = [b"\xff\xff", b"", b"\x04\x01\x02", b"*\t*********", PUBLIC_A.to_bytes()]
    body = b"\x08\x64" + b"".join(bytes([0x12, len(e)]) + e for e in entries)
    msg = decode_message(body)
    assert msg.addrs == (PUBLIC_A,)
    assert msg.invalid == 4


def test_address_count_bound() -> None:
    raw = PUBLIC_A.to_bytes()
    body = b"\x08\x64" + (bytes([0x12, len(raw)]) + raw) * (MAX_ADDRS + 10)
    msg = decode_message(body)
    assert len(msg.addrs) == MAX_ADDRS
    assert msg.invalid == 10


def test_oversized_message_refused_from_prefix() -> None:
    core = ResponderCore((PUBLIC_A,))
    with pytest.raises(MalformedMessageError):
        core.receive_data(b"\x81\x20", 0.0)  # length 4097 announced: refused at once
    with pytest.raises(LocalProtocolError):
        core.receive_data(b"\x00", 0.0)


def exchange(initiator: InitiatorCore, responder: ResponderCore, now: float, delay: float) -> None:
    """Carry initiator -> responder -> initiator bytes with ``delay`` seconds each way."""
    responder.receive_data(initiator.data_to_send(), now + delay)
    initiator.receive_data(responder.data_to_send(), now + 2 * delay)


def test_full_round_rtt_and_sync_timer() -> None:
    policy = AddressPolicy()
    b = InitiatorCore(policy=policy)
    a = ResponderCore((PUBLIC_A, PRIVATE), policy=policy)
    b.start_attempt(10.0, (PUBLIC_B, LOOPBACK))
    exchange(b, a, 10.0, 0.05)
    assert b.rtt == pytest.approx(0.1)
    # SYNC is out; B dials after RTT/2.
    assert b.next_deadline() == pytest.approx(10.15)
    a.receive_data(b.data_to_send(), 10.15)
    ev_a = a.next_event()
    assert isinstance(ev_a, DialRequested)
    assert ev_a.addrs == (PUBLIC_B,)  # the loopback address is not dialed
    assert ev_a.rejected == 1
    assert b.next_event() is None
    b.handle_timer(10.149)
    assert b.next_event() is None
    b.handle_timer(10.15)
    ev_b = b.next_event()
    assert isinstance(ev_b, DialRequested)
    assert ev_b.addrs == (PUBLIC_A,)
    assert ev_b.rtt == pytest.approx(0.1)


def test_three_attempts_then_failure() -> None:
    b = InitiatorCore()
    a = ResponderCore((PUBLIC_A,))
    now = 0.0
    b.start_attempt(now, (PUBLIC_B,))
    for attempt in (1, 2, 3):
        exchange(b, a, now, 0.01)
        a.receive_data(b.data_to_send(), now + 0.03)
        assert isinstance(a.next_event(), DialRequested)
        b.handle_timer(now + 1)
        ev = b.next_event()
        assert isinstance(ev, DialRequested) and ev.attempt == attempt
        now += 2
        b.attempt_failed(now, (PUBLIC_B,))
    fail = b.next_event()
    assert isinstance(fail, UpgradeFailed)
    assert fail.attempts == 3
    assert b.data_to_send() == b""


def test_responder_refuses_a_fourth_round() -> None:
    a = ResponderCore((PUBLIC_A,))
    connect = encode_message(DcutrMessage(MessageType.CONNECT, (PUBLIC_B,)))
    sync = encode_message(DcutrMessage(MessageType.SYNC))
    for _ in range(3):
        a.receive_data(connect + sync, 0.0)
    with pytest.raises(UnexpectedMessageError):
        a.receive_data(connect, 0.0)


@pytest.mark.parametrize("first", [MessageType.SYNC])
def test_responder_sync_before_connect(first: MessageType) -> None:
    a = ResponderCore((PUBLIC_A,))
    with pytest.raises(UnexpectedMessageError):
        a.receive_data(encode_message(DcutrMessage(first)), 0.0)


def test_initiator_unexpected_sync_and_early_connect() -> None:
    b = InitiatorCore()
    with pytest.raises(UnexpectedMessageError):
        b.receive_data(encode_message(DcutrMessage(MessageType.CONNECT, (PUBLIC_A,))), 0.0)
    b2 = InitiatorCore()
    b2.start_attempt(0.0, ())
    with pytest.raises(UnexpectedMessageError):
        b2.receive_data(encode_message(DcutrMessage(MessageType.SYNC)), 0.0)


def test_initiator_gives_up_without_dialable_addresses() -> None:
    b = InitiatorCore()
    b.start_attempt(0.0, (PUBLIC_B,))
    b.data_to_send()
    reply = DcutrMessage(MessageType.CONNECT, (PRIVATE, LOOPBACK))
    b.receive_data(encode_message(reply), 0.1)
    ev = b.next_event()
    assert isinstance(ev, UpgradeFailed) and "no dialable" in ev.reason
    assert b.data_to_send() == b""  # no SYNC: nothing will be dialed


def test_private_addresses_allowed_when_configured() -> None:
    b = InitiatorCore(policy=AddressPolicy(allow_private=True))
    b.start_attempt(0.0, ())
    b.data_to_send()
    b.receive_data(encode_message(DcutrMessage(MessageType.CONNECT, (PRIVATE,))), 0.2)
    b.handle_timer(0.31)
    ev = b.next_event()
    assert isinstance(ev, DialRequested) and ev.addrs == (PRIVATE,)


def test_response_timeout_and_responder_idle() -> None:
    b = InitiatorCore(response_timeout=5.0)
    b.start_attempt(0.0, ())
    b.handle_timer(4.9)
    assert b.next_event() is None
    b.handle_timer(5.0)
    assert isinstance(b.next_event(), UpgradeFailed)
    a = ResponderCore((), idle_timeout=2.0, now=1.0)
    assert a.next_deadline() == 3.0
    a.handle_timer(3.0)
    assert a.done


def test_split_delivery() -> None:
    a = ResponderCore((PUBLIC_A,))
    data = encode_message(DcutrMessage(MessageType.CONNECT, (PUBLIC_B,)))
    for i in range(len(data)):
        a.receive_data(data[i : i + 1], 0.0)
    assert a.data_to_send()[1:3] == b"\x08\x64"
