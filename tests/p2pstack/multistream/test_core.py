"""Tests for the sans-IO multistream-select cores and message codec, with literal vectors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pstack.errors import (
    LocalProtocolError,
    NegotiationError,
    ProtocolNotSupported,
    RemoteProtocolError,
)
from p2pstack.multistream import (
    MAX_MESSAGE_LENGTH,
    MAX_REJECTED_PROPOSALS,
    DialerCore,
    ListenerCore,
    decode_message,
    encode_message,
)

HEADER = b"\x13/multistream/1.0.0\n"
NA = b"\x03na\n"
YAMUX = b"\x0d/yamux/1.0.0\n"
MPLEX = b"\x0d/mplex/6.7.0\n"
NOISE = b"\x07/noise\n"


def test_literal_vectors() -> None:
    assert encode_message("/multistream/1.0.0") == HEADER
    assert encode_message("na") == NA
    assert encode_message("/yamux/1.0.0") == YAMUX
    assert decode_message(HEADER) == ("/multistream/1.0.0", len(HEADER))
    assert decode_message(HEADER + NA, len(HEADER)) == ("na", len(HEADER) + len(NA))


def test_two_byte_length_prefix() -> None:
    name = "/" + "a" * 199
    encoded = encode_message(name)
    assert encoded[:2] == b"\xc9\x01"  # 201 = 200 bytes + newline
    assert decode_message(encoded) == (name, len(encoded))


@pytest.mark.parametrize("cut", range(len(HEADER)))
def test_incomplete_message_needs_more(cut: int) -> None:
    assert decode_message(HEADER[:cut]) is None


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x00", "empty"),
        (b"\x03na!", "newline"),
        (b"\x03\xff\xfe\n", "UTF-8"),
        (b"\x81\x08", "exceeds"),  # 1025
        (b"\xff\xff", "too long"),  # length prefix already past any allowed length
        (b"\x80\x00", "minimal"),
    ],
)
def test_malformed_messages(data: bytes, match: str) -> None:
    with pytest.raises(RemoteProtocolError, match=match):
        decode_message(data)


def test_max_length_boundary() -> None:
    longest = "/" + "x" * (MAX_MESSAGE_LENGTH - 2)
    assert decode_message(encode_message(longest)) is not None
    with pytest.raises(ValueError, match="longer"):
        encode_message(longest + "x")


@pytest.mark.parametrize("bad", ["", "a\nb"])
def test_encode_refuses_invalid_text(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        encode_message(bad)


_names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\n"),
    min_size=1,
    max_size=300,
)


@given(_names)
def test_round_trip(name: str) -> None:
    encoded = encode_message(name)
    assert decode_message(encoded + b"trailing") == (name, len(encoded))


@given(st.binary(max_size=2000), st.integers(min_value=0, max_value=5))
def test_garbage_only_raises_typed_errors(data: bytes, pos: int) -> None:
    try:
        decoded = decode_message(data, pos)
    except RemoteProtocolError:
        return
    if decoded is not None:
        assert pos < decoded[1] <= len(data)


@given(st.binary(max_size=600), st.integers(min_value=1, max_value=50))
def test_listener_fed_garbage_only_raises_typed_errors(data: bytes, step: int) -> None:
    core = ListenerCore(lambda p: p == "/yamux/1.0.0")
    try:
        for i in range(0, len(data), step):
            core.receive_data(data[i : i + step])
            if core.result is not None:
                break
    except (RemoteProtocolError, NegotiationError):
        pass


def test_dialer_pipelines_header_and_first_proposal() -> None:
    dialer = DialerCore(["/yamux/1.0.0", "/mplex/6.7.0"])
    assert dialer.data_to_send() == HEADER + YAMUX
    assert dialer.data_to_send() == b""
    dialer.receive_data(HEADER + YAMUX + b"muxer bytes")
    assert dialer.result == "/yamux/1.0.0"
    assert dialer.leftover == b"muxer bytes"


def test_dialer_na_then_second_proposal() -> None:
    dialer = DialerCore(["/yamux/1.0.0", "/mplex/6.7.0"])
    dialer.data_to_send()
    dialer.receive_data(HEADER)
    assert dialer.result is None
    assert dialer.data_to_send() == b""
    dialer.receive_data(NA)
    assert dialer.data_to_send() == MPLEX
    dialer.receive_data(MPLEX)
    assert dialer.result == "/mplex/6.7.0"
    assert dialer.leftover == b""


def test_dialer_byte_by_byte() -> None:
    dialer = DialerCore(["/noise"])
    for byte in HEADER + NOISE + b"xy":
        if dialer.result is None:
            dialer.receive_data(bytes((byte,)))
    assert dialer.result == "/noise"
    assert dialer.leftover == b""  # the last bytes arrived after the result was known


def test_dialer_all_refused() -> None:
    dialer = DialerCore(["/a", "/b"])
    dialer.data_to_send()
    with pytest.raises(ProtocolNotSupported) as info:
        dialer.receive_data(HEADER + NA + NA)
    assert info.value.protocols == ("/a", "/b")
    assert dialer.data_to_send() == b"\x03/b\n"
    with pytest.raises(LocalProtocolError):
        dialer.receive_data(b"")


def test_dialer_bad_header() -> None:
    with pytest.raises(NegotiationError, match="multistream"):
        DialerCore(["/a"]).receive_data(b"\x13/multistream/2.0.0\n")


def test_dialer_unexpected_answer() -> None:
    with pytest.raises(RemoteProtocolError, match="unexpected"):
        DialerCore(["/a"]).receive_data(HEADER + b"\x03/b\n")


def test_dialer_needs_protocols() -> None:
    with pytest.raises(ValueError, match="no protocols"):
        DialerCore([])


def test_listener_sends_header_first() -> None:
    listener = ListenerCore(lambda p: False)
    assert listener.data_to_send() == HEADER


def test_listener_header_and_proposal_in_one_read() -> None:
    listener = ListenerCore(lambda p: p == "/yamux/1.0.0")
    listener.data_to_send()
    listener.receive_data(HEADER + MPLEX + YAMUX)
    assert listener.data_to_send() == NA + YAMUX
    assert listener.result == "/yamux/1.0.0"
    assert listener.leftover == b""


def test_listener_dialer_waiting_for_our_header() -> None:
    listener = ListenerCore(lambda p: p == "/noise")
    assert listener.data_to_send() == HEADER
    listener.receive_data(HEADER)
    assert listener.data_to_send() == b""
    assert listener.result is None
    listener.receive_data(NOISE)
    assert listener.data_to_send() == NOISE
    assert listener.result == "/noise"


def test_listener_lazy_dialer_data_is_leftover() -> None:
    listener = ListenerCore(lambda p: p == "/noise")
    listener.receive_data(HEADER + NOISE + b"\x00\x20handshake")
    assert listener.result == "/noise"
    assert listener.leftover == b"\x00\x20handshake"


def test_listener_answers_ls_and_repeated_header() -> None:
    listener = ListenerCore(lambda p: True)
    listener.data_to_send()
    listener.receive_data(HEADER + b"\x03ls\n" + HEADER)
    assert listener.data_to_send() == NA + HEADER
    assert listener.result is None


def test_listener_bad_header() -> None:
    with pytest.raises(NegotiationError):
        ListenerCore(lambda p: True).receive_data(NOISE)


def test_listener_bounds_refused_proposals() -> None:
    listener = ListenerCore(lambda p: False)
    listener.receive_data(HEADER + NOISE * MAX_REJECTED_PROPOSALS)
    assert listener.data_to_send() == HEADER + NA * MAX_REJECTED_PROPOSALS
    with pytest.raises(RemoteProtocolError, match="refused proposals"):
        listener.receive_data(NOISE)


def test_listener_oversize_proposal() -> None:
    with pytest.raises(RemoteProtocolError):
        ListenerCore(lambda p: True).receive_data(HEADER + b"\xff\x7f" + b"a" * 100)


def test_cores_back_to_back() -> None:
    dialer = DialerCore(["/tls/1.0.0", "/noise"])
    listener = ListenerCore(lambda p: p == "/noise")
    while dialer.result is None:
        listener.receive_data(dialer.data_to_send())
        dialer.receive_data(listener.data_to_send())
    assert dialer.result == listener.result == "/noise"
