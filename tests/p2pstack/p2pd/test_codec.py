"""The sans-IO side of the p2pd client: request bytes, reply parsing, typed errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiaddr import Multiaddr

from fuzz._p2pd import fuzz_p2pd_reply
from p2pstack.identity import PeerId, generate_private_key
from p2pstack.p2pd import (
    DaemonError,
    DaemonProtocolError,
    check_ok,
    decode_dht_item,
    decode_dht_response,
    decode_ps_message,
    decode_response,
    decode_stream_info,
    encode_request,
)
from p2pstack.p2pd import _requests as rq
from p2pstack.p2pd.pb import p2pd_pb2 as pb

PEER = PeerId.from_public_key(generate_private_key().public_key)
ADDR = Multiaddr("/ip4/127.0.0.1/tcp/4001")


def test_identify_request_writes_its_zero_type() -> None:
    # length 2, then field 1 (varint) = 0: IDENTIFY must be on the wire even though it is 0
    assert encode_request(rq.identify()) == b"\x02\x08\x00"


def test_request_without_type_is_refused() -> None:
    with pytest.raises(ValueError, match="type"):
        encode_request(pb.Request())


def test_connect_request_round_trips_with_whole_seconds() -> None:
    data = encode_request(rq.connect(PEER, [ADDR], timeout=2.5))
    assert data[0] == len(data) - 1
    req = pb.Request.FromString(data[1:])
    assert req.type == pb.Request.CONNECT
    assert PeerId.from_bytes(req.connect.peer) == PEER
    assert [Multiaddr(a) for a in req.connect.addrs] == [ADDR]
    assert req.connect.timeout == 3


def test_stream_open_needs_a_protocol() -> None:
    with pytest.raises(ValueError):
        rq.stream_open(PEER, [], None)
    req = rq.stream_open(PEER, ["/a", "/b"], None)
    assert list(req.streamOpen.proto) == ["/a", "/b"] and not req.streamOpen.HasField("timeout")


def test_dht_and_pubsub_requests_carry_only_what_is_given() -> None:
    req = rq.dht(pb.DHTRequest.GET_VALUE, key=b"/pk/x", timeout=10)
    assert (req.type, req.dht.type, req.dht.key, req.dht.timeout) == (
        pb.Request.DHT, pb.DHTRequest.GET_VALUE, b"/pk/x", 10,
    )  # fmt: skip
    assert not req.dht.HasField("peer") and not req.dht.HasField("count")
    ps = rq.pubsub(pb.PSRequest.PUBLISH, topic="t", data=b"")
    assert ps.pubsub.HasField("data") and ps.pubsub.topic == "t"


def test_ok_response_with_identify() -> None:
    body = pb.Response(
        type=pb.Response.OK,
        identify=pb.IdentifyResponse(id=PEER.to_bytes(), addrs=[ADDR.to_bytes()]),
    ).SerializeToString()
    resp = check_ok(decode_response(body))
    assert PeerId.from_bytes(resp.identify.id) == PEER


def test_error_response_raises_the_daemons_message() -> None:
    body = pb.Response(
        type=pb.Response.ERROR, error=pb.ErrorResponse(msg="ERR_INVALID_REQUEST_TYPE")
    ).SerializeToString()
    with pytest.raises(DaemonError) as err:
        check_ok(decode_response(body))
    assert err.value.message == "ERR_INVALID_REQUEST_TYPE"


def test_malformed_replies_are_protocol_errors() -> None:
    with pytest.raises(DaemonProtocolError):
        decode_response(b"\x0a\xff")  # field 1 as length-delimited, truncated
    with pytest.raises(DaemonProtocolError, match="without a type"):
        check_ok(decode_response(b""))
    with pytest.raises(DaemonProtocolError, match="peer ID"):
        decode_stream_info(pb.StreamInfo(peer=b"nope", addr=ADDR.to_bytes()).SerializeToString())
    with pytest.raises(DaemonProtocolError, match="multiaddr"):
        decode_stream_info(pb.StreamInfo(peer=PEER.to_bytes(), addr=b"\xff").SerializeToString())
    with pytest.raises(DaemonProtocolError, match="without a type"):
        decode_dht_response(b"")


def test_stream_info_and_dht_items() -> None:
    info = decode_stream_info(
        pb.StreamInfo(peer=PEER.to_bytes(), addr=ADDR.to_bytes(), proto="/echo").SerializeToString()
    )
    assert (info.peer_id, info.addr, info.protocol) == (PEER, ADDR, "/echo")
    value = decode_dht_response(
        pb.DHTResponse(
            type=pb.DHTResponse.VALUE, peer=pb.PeerInfo(id=PEER.to_bytes(), addrs=[ADDR.to_bytes()])
        ).SerializeToString()
    )
    item = decode_dht_item(value)
    assert item.peer is not None and item.peer.peer_id == PEER and item.value is None
    with pytest.raises(DaemonProtocolError):
        decode_dht_item(pb.DHTResponse(type=pb.DHTResponse.END))


def test_pubsub_message() -> None:
    msg = pb.PSMessage(data=b"hi", seqno=b"\x00\x01", topicIDs=["t"], signature=b"s", key=b"k")
    setattr(msg, "from", PEER.to_bytes())
    got = decode_ps_message(msg.SerializeToString())
    assert (got.data, got.topics, got.from_peer, got.seqno) == (b"hi", ("t",), PEER, b"\x00\x01")
    unsigned = decode_ps_message(pb.PSMessage(data=b"x", topicIDs=["t"]).SerializeToString())
    assert unsigned.from_peer is None and unsigned.signature == b""


@given(st.binary(max_size=512))
def test_reply_parser_raises_only_typed_errors(data: bytes) -> None:
    fuzz_p2pd_reply(data)


def test_text_fields_that_are_not_utf8_are_protocol_errors() -> None:
    # found by the p2pd_reply fuzz target: proto2 parsing keeps a non-UTF-8 string as bytes
    bad = pb.StreamInfo(peer=PEER.to_bytes(), addr=ADDR.to_bytes()).SerializeToString()
    with pytest.raises(DaemonProtocolError, match="UTF-8"):
        decode_stream_info(bad + b"\x1a\x02\x910")
    with pytest.raises(DaemonProtocolError, match="UTF-8"):
        decode_ps_message(b"\x22\x02\x910")
    with pytest.raises(DaemonError) as err:
        check_ok(decode_response(b"\x08\x01\x12\x04\x0a\x02\x910"))
    assert err.value.message == "\ufffd0"
