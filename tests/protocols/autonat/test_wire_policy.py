"""AutoNAT wire formats (literal bytes from the specs' schemas) and server/client decisions."""

from __future__ import annotations

import attrs
import pytest
from multiaddr import Multiaddr

from p2pstack.errors import RemoteProtocolError
from protocols.autonat import (
    ClientSchedule,
    DialDataCounter,
    DialDataRequest,
    DialDataResponse,
    DialRequest,
    DialResponse,
    DialStatus,
    RateLimiter,
    ReachabilityTracker,
    Requester,
    ResponseStatus,
    ServerLimits,
    V1Dial,
    V1DialResponse,
    V1Status,
    V2Target,
    decode_dial_back,
    decode_dial_back_response,
    decode_v1,
    decode_v2,
    encode_dial_back,
    encode_dial_back_response,
    encode_v1,
    encode_v2,
    screen_v1,
    screen_v2,
    select_v1_addrs,
    select_v2_addr,
)

TCP = Multiaddr("/ip4/127.0.0.1/tcp/4001")  # bytes 04 7f000001 06 0fa1


def test_v1_bytes() -> None:
    dial = V1Dial(peer_id=b"\x01\x02", addrs=(TCP,))
    # type=DIAL(0); dial{peer{id=0102, addrs=[047f000001060fa1]}}
    raw = bytes.fromhex("0800" + "1210" + "0a0e" + "0a020102" + "1208047f000001060fa1")
    assert encode_v1(dial) == raw
    assert decode_v1(raw) == dial
    resp = V1DialResponse(status=V1Status.E_DIAL_REFUSED, text="no")
    raw = bytes.fromhex("0801" + "1a06" + "0865" + "12026e6f")
    assert encode_v1(resp) == raw
    assert decode_v1(raw) == resp
    with pytest.raises(RemoteProtocolError):  # proto2: an unknown status code is no status
        decode_v1(bytes.fromhex("08011a0308e707"))


@pytest.mark.parametrize(
    "raw", ["", "0802", "0800", "0801", "08011a00", "ff", "0a"], ids=lambda r: r or "empty"
)
def test_v1_bad(raw: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_v1(bytes.fromhex(raw))


def test_v2_bytes() -> None:
    req = DialRequest(addrs=(TCP, None), nonce=0x0102030405060708)
    raw = bytes.fromhex("0a15" + "0a08047f000001060fa1" + "0a00" + "110807060504030201")
    assert encode_v2(req) == raw
    assert decode_v2(raw) == req
    ask = DialDataRequest(addr_idx=1, num_bytes=30000)
    assert encode_v2(ask) == bytes.fromhex("1a06080110b0ea01")
    assert decode_v2(encode_v2(ask)) == ask
    data = DialDataResponse(data=b"\x00" * 3)
    assert decode_v2(encode_v2(data)) == data
    resp = DialResponse(status=ResponseStatus.OK, addr_idx=0, dial_status=DialStatus.OK)
    assert encode_v2(resp) == bytes.fromhex("1206" + "08c801" + "18c801")
    assert decode_v2(encode_v2(resp)) == resp
    assert decode_v2(bytes.fromhex("12020801")) == DialResponse(status=1)  # unknown code kept
    assert decode_dial_back(encode_dial_back(7)) == 7
    assert encode_dial_back(7) == bytes.fromhex("090700000000000000")
    assert decode_dial_back_response(encode_dial_back_response()) == 0
    with pytest.raises(RemoteProtocolError):
        decode_v2(b"")
    with pytest.raises(RemoteProtocolError):
        decode_v2(b"\xff")


def test_v1_selects_only_the_observed_ip() -> None:
    seen = Multiaddr("/ip4/127.0.0.1/tcp/50000")
    other = Multiaddr("/ip4/127.0.0.2/tcp/4001")
    circuit = Multiaddr("/ip4/127.0.0.1/tcp/4001/p2p-circuit")
    assert select_v1_addrs([other, TCP, circuit], seen, allow_private=True, max_addrs=4) == [TCP]
    assert select_v1_addrs([TCP], seen, allow_private=False, max_addrs=4) == []
    victim = "12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK"
    with_id = Multiaddr(f"/ip4/127.0.0.1/tcp/4001/p2p/{victim}")
    assert select_v1_addrs([with_id, TCP], seen, allow_private=True, max_addrs=4) == [TCP]
    assert select_v2_addr([with_id], seen, allow_private=True) == (0, TCP, False)
    many = [Multiaddr(f"/ip4/127.0.0.1/tcp/{p}") for p in range(1, 10)]
    assert len(select_v1_addrs(many, seen, allow_private=True, max_addrs=4)) == 4


def test_v2_selects_first_dialable_and_asks_data_for_other_ips() -> None:
    seen = Multiaddr("/ip4/127.0.0.1/tcp/50000")
    other = Multiaddr("/ip4/127.0.0.2/tcp/4001")
    assert select_v2_addr([None, Multiaddr("/memory/1"), TCP], seen, allow_private=True) == (
        2,
        TCP,
        False,
    )
    assert select_v2_addr([other, TCP], seen, allow_private=True) == (0, other, True)
    assert select_v2_addr([other, TCP], seen, allow_private=False) is None


def test_rate_limiter_is_bounded() -> None:
    limiter = RateLimiter(window=10.0, total=5, per_key=2, max_keys=3)
    assert [limiter.allow("a", 0.0) for _ in range(3)] == [True, True, False]
    assert limiter.allow("b", 1.0) and limiter.allow("c", 1.0) and limiter.allow("d", 1.0)
    assert not limiter.allow("e", 1.0)  # the global budget is spent
    assert limiter.allow("a", 10.5)  # the window moved on
    assert len(limiter._keys) <= 3


def test_tracker_needs_confidence() -> None:
    tracker = ReachabilityTracker(confidence=3)
    assert tracker.record("s1", True, 0.0) == "unknown"
    assert tracker.record("s1", True, 1.0) == "unknown"  # the same server counts once
    assert tracker.record("s2", True, 1.0) == "unknown"
    assert tracker.record("s3", None, 1.0) == "unknown"  # a refusal is no vote
    assert tracker.record("s3", True, 2.0) == "public"
    for server in ("s4", "s5", "s6"):
        tracker.record(server, False, 3.0)
    assert tracker.state == "public"  # three against three: no change
    assert tracker.record("s1", False, 4.0) == "private"
    with pytest.raises(ValueError):
        ReachabilityTracker(confidence=0)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        ServerLimits(dial_data_bytes=1000)
    with pytest.raises(ValueError):
        ServerLimits(per_peer_rate=0)
    with pytest.raises(ValueError):
        ClientSchedule(confidence=0)


ME = b"\x00\x02\x08\x01"
SEEN = Multiaddr("/ip4/127.0.0.1/tcp/50000")


def test_screen_v1() -> None:
    who = Requester(peer_id=ME, observed=SEEN, limited=False)
    other = Multiaddr("/ip4/127.0.0.2/tcp/4001")

    def status(request: V1Dial | V1DialResponse, who: Requester = who) -> object:
        result = screen_v1(request, who, allow_private=True, max_addrs=4)
        return (result.status, result.text) if isinstance(result, V1DialResponse) else result

    assert status(V1Dial(peer_id=ME, addrs=(other, TCP))) == [TCP]
    assert status(V1Dial(peer_id=ME, addrs=(other,))) == (
        101,
        "no dialable address on the observed IP",
    )
    # (the ignore below: a refusal here)
    assert status(V1Dial(peer_id=b"\x00\x01\x00", addrs=(TCP,)))[0] == 200  # type: ignore[index]
    assert status(V1DialResponse(status=0))[0] == 200  # type: ignore[index]  # a refusal here
    relayed = attrs.evolve(who, limited=True)
    # (the ignore below: a refusal here)
    assert status(V1Dial(peer_id=ME, addrs=(TCP,)), relayed)[0] == 101  # type: ignore[index]


def test_screen_v2() -> None:
    who = Requester(peer_id=ME, observed=SEEN, limited=False)
    other = Multiaddr("/ip4/127.0.0.2/tcp/4001")
    target = screen_v2(DialRequest(addrs=(None, other, TCP), nonce=1), who, allow_private=True)
    assert target == V2Target(index=1, addr=other, needs_data=True)
    refused = screen_v2(DialRequest(addrs=(other,), nonce=1), who, allow_private=False)
    assert refused == DialResponse(status=ResponseStatus.E_DIAL_REFUSED)
    relayed = screen_v2(
        DialRequest(addrs=(TCP,), nonce=1), attrs.evolve(who, limited=True), allow_private=True
    )
    assert relayed == DialResponse(status=ResponseStatus.E_REQUEST_REJECTED)


def test_dial_data_counter() -> None:
    counter = DialDataCounter(10_000)
    assert not counter.feed(DialDataResponse(data=bytes(4096)))
    assert not counter.feed(DialDataResponse(data=bytes(4096)))
    assert counter.feed(DialDataResponse(data=bytes(4096)))  # the last may go past
    assert counter.received == 12_288
    for bad in (
        DialDataResponse(data=b""),
        DialDataResponse(data=bytes(4097)),
        DialResponse(status=200),
    ):
        with pytest.raises(RemoteProtocolError):
            DialDataCounter(1).feed(bad)
