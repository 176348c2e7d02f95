"""The sans-IO mplex core, driven with literal bytes from the spec and back to back in pairs."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pstack.errors import LocalProtocolError, MuxerError, RemoteProtocolError
from transports.mplex import (
    DataReceived,
    IdleTimedOut,
    MplexConfig,
    MplexConnectionCore,
    MplexEvent,
    StreamEnded,
    StreamKey,
    StreamOpened,
    StreamOpenPacer,
    StreamRejected,
    StreamWasReset,
)

H = bytes.fromhex


def events(core: MplexConnectionCore) -> list[MplexEvent]:
    out = []
    while (event := core.next_event()) is not None:
        out.append(event)
    return out


def core_with(**overrides: int) -> MplexConnectionCore:
    return MplexConnectionCore(attrs.evolve(MplexConfig(), **overrides))


class CorePair:
    """Two cores wired back to back: what one queues, the other receives."""

    def __init__(self, config: MplexConfig | None = None) -> None:
        self.a = MplexConnectionCore(config)
        self.b = MplexConnectionCore(config)

    def pump(self) -> None:
        while self.a.pending_output or self.b.pending_output:
            if data := self.a.data_to_send():
                self.b.receive_data(data)
            if data := self.b.data_to_send():
                self.a.receive_data(data)


# ---------------------------------------------------------------- opening


def test_open_stream_sends_new_stream_named_by_decimal_id() -> None:
    core = MplexConnectionCore()
    assert core.open_stream() == StreamKey(0, True)
    assert core.open_stream() == StreamKey(1, True)
    assert core.data_to_send() == H("00 01 30") + H("08 01 31")
    assert core.data_to_send() == b""
    assert core.outbound_streams == 2


def test_new_stream_from_peer() -> None:
    core = MplexConnectionCore()
    core.receive_data(H("00 01 30"))
    assert events(core) == [StreamOpened(StreamKey(0, False), "0")]
    assert core.inbound_streams == 1
    assert core.data_to_send() == b""


def test_same_id_names_two_streams() -> None:
    core = MplexConnectionCore()
    ours = core.open_stream()
    core.receive_data(H("00 01 30"))  # the peer's stream 0
    theirs = StreamKey(0, False)
    assert events(core) == [StreamOpened(theirs, "0")]
    core.data_to_send()
    # Receiver flag (odd): the peer writes on the stream we opened; initiator flag: on theirs.
    core.receive_data(H("01 01 61") + H("02 01 62"))
    assert events(core) == [DataReceived(ours, b"a"), DataReceived(theirs, b"b")]
    core.send_data(ours, b"x")
    core.send_data(theirs, b"y")
    assert core.data_to_send() == H("02 01 78") + H("01 01 79")


def test_duplicate_new_stream_kills_connection() -> None:
    core = MplexConnectionCore()
    core.receive_data(H("00 01 30"))
    with pytest.raises(RemoteProtocolError, match="open stream"):
        core.receive_data(H("00 01 30"))
    assert core.is_closed
    assert isinstance(core.error, RemoteProtocolError)
    with pytest.raises(LocalProtocolError):
        core.open_stream()


def test_inbound_limit_resets_new_stream() -> None:
    core = core_with(max_inbound_streams=1)
    core.receive_data(H("00 01 30") + H("08 01 31"))
    assert events(core) == [
        StreamOpened(StreamKey(0, False), "0"),
        StreamRejected(StreamKey(1, False), "too many inbound streams"),
    ]
    assert core.data_to_send() == H("0d 00")  # ResetReceiver for stream 1
    assert not core.is_open(StreamKey(1, False))


def test_outbound_limit() -> None:
    core = core_with(max_outbound_streams=2)
    core.open_stream()
    key = core.open_stream()
    with pytest.raises(MuxerError):
        core.open_stream()
    core.reset_stream(key)
    assert core.open_stream() == StreamKey(2, True)


# ---------------------------------------------------------------- data


def test_send_splits_into_max_message_size() -> None:
    core = core_with(max_message_size=4)
    key = core.open_stream()
    core.data_to_send()
    core.send_data(key, bytearray(b"abcdefghij"))
    assert core.data_to_send() == H("02 04") + b"abcd" + H("02 04") + b"efgh" + H("02 02") + b"ij"


def test_empty_send_sends_nothing() -> None:
    core = MplexConnectionCore()
    key = core.open_stream()
    core.data_to_send()
    core.send_data(key, b"")
    assert core.data_to_send() == b""


def test_oversized_message_kills_connection() -> None:
    core = core_with(max_message_size=8)
    core.receive_data(H("00 01 30"))
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        core.receive_data(H("02 09"))
    assert core.is_closed


def test_byte_at_a_time_gives_same_events() -> None:
    wire = H("00 01 30") + H("02 03 61 62 63") + H("04 00")
    core = MplexConnectionCore()
    for i in range(len(wire)):
        core.receive_data(wire[i : i + 1])
    key = StreamKey(0, False)
    assert events(core) == [StreamOpened(key, "0"), DataReceived(key, b"abc"), StreamEnded(key)]


def test_buffer_overflow_resets_only_that_stream() -> None:
    core = core_with(max_stream_buffer=10)
    core.receive_data(H("00 01 30") + H("08 01 31"))
    events(core)
    a, b = StreamKey(0, False), StreamKey(1, False)
    core.receive_data(H("02 06") + b"aaaaaa" + H("0a 06") + b"bbbbbb")
    core.consumed(b, 6)  # the application read stream 1, not stream 0
    core.receive_data(H("02 06") + b"aaaaaa" + H("0a 06") + b"bbbbbb")
    assert events(core)[2:] == [
        StreamWasReset(a, "stream receive buffer overflow", by_peer=False),
        DataReceived(b, b"bbbbbb"),
    ]
    assert core.data_to_send() == H("05 00")  # ResetReceiver for stream 0
    assert not core.is_open(a)
    assert core.is_open(b)
    # What still arrives for the reset stream is ignored.
    core.receive_data(H("02 01 61"))
    assert events(core) == []
    assert core.ignored_messages == 1


def test_data_after_peer_close_resets_stream() -> None:
    core = MplexConnectionCore()
    core.receive_data(H("00 01 30") + H("04 00") + H("02 01 61"))
    key = StreamKey(0, False)
    assert events(core)[1:] == [
        StreamEnded(key),
        StreamWasReset(key, "peer sent data after closing the stream", by_peer=False),
    ]
    assert core.data_to_send() == H("05 00")


# ---------------------------------------------------------------- close and reset


def test_close_both_ways_forgets_stream() -> None:
    core = MplexConnectionCore()
    key = core.open_stream()
    core.close_stream(key)
    core.close_stream(key)  # idempotent
    assert core.data_to_send() == H("00 01 30") + H("04 00")
    core.receive_data(H("03 00"))  # CloseReceiver: the peer closed our stream 0
    assert events(core) == [StreamEnded(key)]
    assert not core.is_open(key)
    assert core.outbound_streams == 0
    # Nothing is sent for a stream the peer already forgot.
    core.reset_stream(key)
    assert core.data_to_send() == b""
    with pytest.raises(LocalProtocolError):
        core.send_data(key, b"late")


def test_peer_reset() -> None:
    core = MplexConnectionCore()
    key = core.open_stream()
    core.receive_data(H("05 00"))  # ResetReceiver: the peer reset our stream 0
    assert events(core) == [StreamWasReset(key, "stream reset by peer", by_peer=True)]
    assert core.data_to_send() == H("00 01 30")  # no reset is sent back
    assert not core.is_open(key)


def test_local_reset_flags() -> None:
    core = MplexConnectionCore()
    ours = core.open_stream()
    core.receive_data(H("00 01 30"))
    core.reset_stream(ours)
    core.reset_stream(StreamKey(0, False))
    assert core.data_to_send() == H("00 01 30") + H("06 00") + H("05 00")


def test_release_closes_and_drops_incoming() -> None:
    core = MplexConnectionCore()
    core.receive_data(H("00 01 30"))
    events(core)
    key = StreamKey(0, False)
    core.release(key)
    assert core.data_to_send() == H("03 00")  # CloseReceiver
    core.receive_data(H("02 01 61") + H("04 00"))
    assert events(core) == []
    assert not core.is_open(key)


def test_reset_all() -> None:
    core = MplexConnectionCore()
    core.open_stream()
    core.receive_data(H("00 01 30"))
    core.data_to_send()
    assert set(core.reset_all()) == {StreamKey(0, True), StreamKey(0, False)}
    wire = core.data_to_send()
    assert sorted([wire[0:2], wire[2:4]]) == [H("05 00"), H("06 00")]
    assert core.is_closed


def test_pair_round_trip() -> None:
    pair = CorePair()
    key = pair.a.open_stream()
    pair.a.send_data(key, b"ping")
    pair.a.close_stream(key)
    pair.pump()
    theirs = StreamKey(key.stream_id, False)
    assert events(pair.b) == [
        StreamOpened(theirs, "0"),
        DataReceived(theirs, b"ping"),
        StreamEnded(theirs),
    ]
    pair.b.send_data(theirs, b"pong")
    pair.b.close_stream(theirs)
    pair.pump()
    assert events(pair.a) == [DataReceived(key, b"pong"), StreamEnded(key)]
    assert not pair.a.is_open(key)
    assert not pair.b.is_open(theirs)


@given(
    st.lists(st.binary(min_size=1, max_size=50), min_size=1, max_size=10),
    st.data(),
)
def test_pair_delivers_in_order_across_any_split(chunks: list[bytes], data: st.DataObject) -> None:
    sender = core_with(max_message_size=16)
    key = sender.open_stream()
    for chunk in chunks:
        sender.send_data(key, chunk)
    sender.close_stream(key)
    wire = sender.data_to_send()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    receiver = MplexConnectionCore()
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        receiver.receive_data(wire[start:end])
    got = events(receiver)
    received = b"".join(e.data for e in got if isinstance(e, DataReceived))
    assert received == b"".join(chunks)
    assert got[-1] == StreamEnded(StreamKey(0, False))


@given(st.lists(st.binary(max_size=64), max_size=10))
def test_garbage_raises_only_remote_protocol_error(chunks: list[bytes]) -> None:
    core = core_with(max_message_size=32, max_stream_buffer=64, max_inbound_streams=4)
    try:
        for chunk in chunks:
            core.receive_data(chunk)
            events(core)
            core.data_to_send()
    except RemoteProtocolError:
        assert core.is_closed


# ---------------------------------------------------------------- pacing


def test_pacer_allows_burst_then_waits_for_window() -> None:
    pacer = StreamOpenPacer(max_opens=3, window=1.0)
    for t in (10.0, 10.1, 10.2):
        assert pacer.delay(t) == 0.0
        pacer.record(t)
    assert pacer.delay(10.2) == pytest.approx(0.8)
    assert pacer.delay(11.0) == 0.0
    pacer.record(11.0)
    assert pacer.delay(11.0) == pytest.approx(0.1)  # the open at 10.1 is still in the window


def test_pacer_disabled_by_zero_window() -> None:
    pacer = StreamOpenPacer(max_opens=1, window=0.0)
    for _ in range(10):
        assert pacer.delay(0.0) == 0.0
        pacer.record(0.0)


def test_pacer_never_exceeds_rate() -> None:
    pacer = StreamOpenPacer(max_opens=5, window=1.25)
    now = 0.0
    times = []
    for _ in range(40):
        now += pacer.delay(now)
        pacer.record(now)
        times.append(now)
    # js-libp2p's rule: at most 5 NewStream within 1 s (with our margin, 1.25 s).
    for i in range(len(times) - 5):
        assert times[i + 5] - times[i] >= 1.25


def test_idle_timer_restarts_on_input_and_ends_the_connection() -> None:
    core = MplexConnectionCore(MplexConfig(idle_timeout=60.0))
    assert core.next_deadline() is None  # no timers before start
    core.start_timers(10.0)
    assert core.next_deadline() == 70.0
    core.receive_data(H("00 01 30"), now=50.0)
    assert core.next_deadline() == 110.0
    core.handle_timer(109.0)  # early: nothing happens
    assert not core.is_closed
    core.handle_timer(110.0)
    assert core.is_closed
    assert events(core)[-1] == IdleTimedOut(60.0)
    assert core.next_deadline() is None


def test_no_idle_timer_by_default() -> None:
    core = MplexConnectionCore()
    core.start_timers(0.0)
    assert core.next_deadline() is None
