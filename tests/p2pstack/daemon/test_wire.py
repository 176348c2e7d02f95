from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiaddr import Multiaddr

from p2pstack.framing import encode_lp
from p2pstack.identity import Identity
from p2pstack.p2pd.pb import p2pd_pb2 as pb
from p2pstack.roots.daemon import _wire as w
from p2pstack.roots.daemon._dht import announced_addrs, cid_multihash

PEER = Identity.generate().peer_id


def test_identify_request_is_two_bytes() -> None:
    # type = IDENTIFY (0) written explicitly, as go and js clients do: field 1, varint 0.
    assert w.parse_request(bytes.fromhex("0800")) == w.Identify()
    with pytest.raises(w.ControlError, match="missing or unknown request type"):
        w.parse_request(b"")  # both clients write the type, even 0


def test_connect_request_from_literal_bytes() -> None:
    addr = Multiaddr("/ip4/127.0.0.1/tcp/4001").to_bytes()
    peer = PEER.to_bytes()
    connect = (
        b"\x0a" + bytes([len(peer)]) + peer + b"\x12" + bytes([len(addr)]) + addr + b"\x18\x05"
    )
    body = b"\x08\x01\x12" + bytes([len(connect)]) + connect
    assert w.parse_request(body) == w.Connect(PEER, (Multiaddr(addr),), 5.0)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (pb.Request(type=pb.Request.CONNECT), "missing connect"),
        (
            pb.Request(type=pb.Request.CONNECT, connect=pb.ConnectRequest(peer=b"xx")),
            "invalid peer",
        ),
        (
            pb.Request(
                type=pb.Request.STREAM_OPEN, streamOpen=pb.StreamOpenRequest(peer=PEER.to_bytes())
            ),
            "missing protocol",
        ),
        (
            pb.Request(
                type=pb.Request.STREAM_HANDLER,
                streamHandler=pb.StreamHandlerRequest(addr=b"\xff\xff", proto=["/x"]),
            ),
            "invalid multiaddr",
        ),
        (
            pb.Request(type=pb.Request.DHT, dht=pb.DHTRequest(type=pb.DHTRequest.GET_VALUE)),
            "missing key",
        ),
        (
            pb.Request(
                type=pb.Request.DHT, dht=pb.DHTRequest(type=pb.DHTRequest.PUT_VALUE, key=b"/pk/x")
            ),
            "missing value",
        ),
        (
            pb.Request(type=pb.Request.PUBSUB, pubsub=pb.PSRequest(type=pb.PSRequest.PUBLISH)),
            "missing topic",
        ),
        (
            pb.Request(
                type=pb.Request.CONNMANAGER,
                connManager=pb.ConnManagerRequest(type=pb.ConnManagerRequest.TAG_PEER),
            ),
            "missing tag",
        ),
        (
            pb.Request(
                type=pb.Request.PEERSTORE,
                peerStore=pb.PeerstoreRequest(type=pb.PeerstoreRequest.UNSPECIFIED),
            ),
            "unsupported PEERSTORE",
        ),
    ],
)
def test_invalid_requests_raise_control_errors(request_: pb.Request, message: str) -> None:
    with pytest.raises(w.ControlError, match=message):
        w.parse_request(request_.SerializeToString())


def test_unknown_request_type_is_refused() -> None:
    with pytest.raises(w.ControlError, match="missing or unknown request type"):
        w.parse_request(b"\x08\x2a")


def test_valid_dht_pubsub_connmanager_peerstore_requests() -> None:
    dht = pb.Request(
        type=pb.Request.DHT, dht=pb.DHTRequest(type=pb.DHTRequest.FIND_PROVIDERS, cid=b"c", count=3)
    )
    assert w.parse_request(dht.SerializeToString()) == w.Dht("FIND_PROVIDERS", key=b"c", count=3)
    ps = pb.Request(
        type=pb.Request.PUBSUB, pubsub=pb.PSRequest(type=pb.PSRequest.SUBSCRIBE, topic="t")
    )
    assert w.parse_request(ps.SerializeToString()) == w.PubsubCommand("SUBSCRIBE", "t")
    cm = pb.Request(
        type=pb.Request.CONNMANAGER,
        connManager=pb.ConnManagerRequest(
            type=pb.ConnManagerRequest.TAG_PEER, peer=PEER.to_bytes(), tag="t", weight=7
        ),
    )
    assert w.parse_request(cm.SerializeToString()) == w.ConnManager("TAG_PEER", PEER, "t", 7)
    store = pb.Request(
        type=pb.Request.PEERSTORE,
        peerStore=pb.PeerstoreRequest(type=pb.PeerstoreRequest.GET_PROTOCOLS, id=PEER.to_bytes()),
    )
    assert w.parse_request(store.SerializeToString()) == w.Peerstore("GET_PROTOCOLS", PEER)


def test_decoder_cuts_requests_and_keeps_what_follows() -> None:
    decoder = w.RequestDecoder()
    data = encode_lp(b"\x08\x00") + encode_lp(b"\x08\x05") + b"raw"
    assert decoder.feed(data[:1]) == []
    assert decoder.feed(data[1:]) == [b"\x08\x00", b"\x08\x05"]
    assert decoder.take_remaining() == b"raw"


def test_decoder_refuses_an_oversized_prefix() -> None:
    with pytest.raises(w.ControlError, match="framing"):
        w.RequestDecoder(max_size=16).feed(b"\x11")


def test_responses_encode_with_a_length_prefix() -> None:
    frame = w.encode(w.error_response("boom"))
    assert frame == bytes.fromhex("0a") + bytes.fromhex("08011206") + b"\x0a\x04boom"
    assert w.encode(w.dht_frame(pb.DHTResponse.END)) == b"\x02\x08\x02"


def test_ps_message_carries_the_from_field() -> None:
    message = w.ps_message(
        sender=b"id", data=b"d", seqno=b"s", topics=["t"], signature=None, key=None
    )
    assert getattr(message, "from") == b"id" and list(message.topicIDs) == ["t"]


def test_cid_multihash() -> None:
    v0 = bytes.fromhex("1220") + bytes(32)
    assert cid_multihash(v0) == v0
    v1 = b"\x01\x55" + v0
    assert cid_multihash(v1) == v0
    with pytest.raises(w.ControlError):
        cid_multihash(b"\x02\x55" + v0)
    with pytest.raises(w.ControlError):
        cid_multihash(b"\x01\x55" + v0[:-1])


def test_announced_addrs_strips_p2p_and_drops_other_peers() -> None:
    other = Identity.generate().peer_id
    addrs = [
        Multiaddr(f"/ip4/1.2.3.4/tcp/1/p2p/{PEER}"),
        Multiaddr("/ip4/1.2.3.4/tcp/1"),
        Multiaddr(f"/ip4/5.6.7.8/tcp/2/p2p/{other}"),
        Multiaddr(f"/ip4/5.6.7.8/tcp/2/p2p/{other}/p2p-circuit/p2p/{PEER}"),
    ]
    assert announced_addrs(PEER, addrs) == [Multiaddr("/ip4/1.2.3.4/tcp/1")]


@given(st.binary(max_size=512))
def test_parse_request_raises_only_control_errors(data: bytes) -> None:
    try:
        w.parse_request(data)
    except w.ControlError:
        pass
