"""The yamux sans-IO core driven with literal frames from the spec and back to back in pairs."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pstack.errors import LocalProtocolError, RemoteProtocolError
from transports.yamux import (
    INITIAL_WINDOW,
    DataReceived,
    Flag,
    FrameType,
    GoAwayReceived,
    PingAnswered,
    PingTimedOut,
    StreamEnded,
    StreamOpened,
    StreamResetReceived,
    WindowUpdated,
    YamuxConfig,
    YamuxConnectionCore,
    YamuxEvent,
    encode_header,
)

GO_AWAY_PROTOCOL_ERROR = bytes.fromhex("00 03 0000 00000000 00000001")


def h(frame_type: FrameType, flags: int, stream_id: int, length: int) -> bytes:
    return encode_header(frame_type, flags, stream_id, length)


def events(core: YamuxConnectionCore) -> list[YamuxEvent]:
    out = []
    while (event := core.next_event()) is not None:
        out.append(event)
    return out


def pump(src: YamuxConnectionCore, dst: YamuxConnectionCore) -> list[YamuxEvent]:
    dst.receive_data(src.data_to_send())
    return events(dst)


def pair(config: YamuxConfig | None = None) -> tuple[YamuxConnectionCore, YamuxConnectionCore]:
    return (
        YamuxConnectionCore(is_initiator=True, config=config),
        YamuxConnectionCore(is_initiator=False, config=config),
    )


def listener_with_stream(stream_id: int = 1) -> YamuxConnectionCore:
    core = YamuxConnectionCore(is_initiator=False)
    core.receive_data(h(FrameType.WINDOW_UPDATE, Flag.SYN, stream_id, 0))
    assert events(core) == [StreamOpened(stream_id)]
    core.data_to_send()
    return core


def test_open_stream_sends_syn_vector_with_odd_ids_for_dialer() -> None:
    dialer = YamuxConnectionCore(is_initiator=True)
    assert dialer.open_stream() == 1
    assert dialer.data_to_send() == bytes.fromhex("00 01 0001 00000001 00000000")
    assert dialer.open_stream() == 3
    listener = YamuxConnectionCore(is_initiator=False)
    assert listener.open_stream() == 2


def test_inbound_syn_is_acknowledged() -> None:
    core = YamuxConnectionCore(is_initiator=False)
    core.receive_data(bytes.fromhex("00 01 0001 00000001 00000000"))
    assert events(core) == [StreamOpened(1)]
    assert core.data_to_send() == bytes.fromhex("00 01 0002 00000001 00000000")


def test_syn_on_data_frame_carries_payload_and_fin() -> None:
    core = YamuxConnectionCore(is_initiator=False)
    core.receive_data(h(FrameType.DATA, Flag.SYN | Flag.FIN, 1, 3) + b"abc")
    assert events(core) == [StreamOpened(1), DataReceived(1, b"abc"), StreamEnded(1)]


def test_payload_split_across_reads_byte_by_byte() -> None:
    core = listener_with_stream()
    wire = h(FrameType.DATA, 0, 1, 5) + b"hello" + h(FrameType.DATA, Flag.FIN, 1, 2) + b"!!"
    got: list[YamuxEvent] = []
    for i in range(len(wire)):
        core.receive_data(wire[i : i + 1])
        got += events(core)
    data = b"".join(e.data for e in got if isinstance(e, DataReceived))
    assert data == b"hello!!"
    assert got[-1] == StreamEnded(1)


def test_ping_is_answered_with_ack_and_same_opaque() -> None:
    core = YamuxConnectionCore(is_initiator=True)
    core.receive_data(bytes.fromhex("00 02 0001 00000000 0000002a"))
    assert events(core) == []
    assert core.data_to_send() == bytes.fromhex("00 02 0002 00000000 0000002a")


def test_ping_answer_is_reported() -> None:
    a, b = pair()
    a.ping(7)
    assert a.data_to_send() == bytes.fromhex("00 02 0001 00000000 00000007")
    a.receive_data(bytes.fromhex("00 02 0002 00000000 00000007"))
    assert events(a) == [PingAnswered(7)]
    with pytest.raises(ValueError, match="32 bits"):
        b.ping(2**32)


def test_go_away_received_blocks_new_streams() -> None:
    core = YamuxConnectionCore(is_initiator=True)
    core.receive_data(bytes.fromhex("00 03 0000 00000000 00000000"))
    assert events(core) == [GoAwayReceived(0)]
    assert core.is_going_away
    with pytest.raises(LocalProtocolError):
        core.open_stream()


def test_local_go_away_is_sent_once_and_refuses_inbound_streams() -> None:
    core = YamuxConnectionCore(is_initiator=True)
    core.go_away()
    core.go_away(2)
    assert core.data_to_send() == bytes.fromhex("00 03 0000 00000000 00000000")
    core.receive_data(h(FrameType.DATA, Flag.SYN, 2, 4) + b"data")
    assert events(core) == []
    assert core.data_to_send() == bytes.fromhex("00 01 0008 00000002 00000000")


def test_stream_limit_resets_excess_inbound_streams() -> None:
    core = YamuxConnectionCore(is_initiator=False, config=YamuxConfig(max_streams=2))
    for stream_id in (1, 3, 5):
        core.receive_data(h(FrameType.WINDOW_UPDATE, Flag.SYN, stream_id, 0))
    assert events(core) == [StreamOpened(1), StreamOpened(3)]
    assert core.data_to_send().endswith(h(FrameType.WINDOW_UPDATE, Flag.RST, 5, 0))
    with pytest.raises(LocalProtocolError, match="too many"):
        core.open_stream()


def test_window_accounting_between_two_cores() -> None:
    a, b = pair()
    stream_id = a.open_stream()
    pump(a, b)
    assert pump(b, a) == []  # the ACK
    big = bytes(INITIAL_WINDOW + 100)
    assert a.send_data(stream_id, big) == INITIAL_WINDOW
    assert a.send_window(stream_id) == 0
    assert a.send_data(stream_id, b"x") == 0
    received = pump(a, b)
    assert sum(len(e.data) for e in received if isinstance(e, DataReceived)) == INITIAL_WINDOW
    # Less than half consumed: no update yet.
    b.consume(stream_id, INITIAL_WINDOW // 2 - 1, now=0.0)
    assert b.data_to_send() == b""
    b.consume(stream_id, 1, now=0.0)
    assert b.data_to_send() == h(FrameType.WINDOW_UPDATE, 0, stream_id, INITIAL_WINDOW // 2)
    b.consume(stream_id, 10, now=0.0)
    a.receive_data(h(FrameType.WINDOW_UPDATE, 0, stream_id, INITIAL_WINDOW // 2))
    assert events(a) == [WindowUpdated(stream_id, INITIAL_WINDOW // 2)]
    assert a.send_window(stream_id) == INITIAL_WINDOW // 2


def test_data_frames_are_split_at_max_message_size() -> None:
    a, b = pair(YamuxConfig(max_message_size=1024))
    stream_id = a.open_stream()
    pump(a, b)
    assert a.send_data(stream_id, bytes(2500)) == 2500
    wire = a.data_to_send()
    assert len(wire) == 2500 + 3 * 12
    assert wire[:12] == h(FrameType.DATA, 0, stream_id, 1024)
    assert wire[2 * (1024 + 12) : 2 * (1024 + 12) + 12] == h(FrameType.DATA, 0, stream_id, 452)


def test_window_auto_tuning_doubles_up_to_max() -> None:
    config = YamuxConfig(max_window=2 * INITIAL_WINDOW)
    core = YamuxConnectionCore(is_initiator=False, config=config)
    core.receive_data(h(FrameType.WINDOW_UPDATE, Flag.SYN, 1, 0))
    core.update_rtt(0.1)
    half = INITIAL_WINDOW // 2
    deltas = []
    now = 0.0
    for _ in range(4):
        core.receive_data(h(FrameType.DATA, 0, 1, half) + bytes(half))
        core.data_to_send()
        events(core)
        core.consume(1, half, now)
        wire = core.data_to_send()
        if wire:
            deltas.append(int.from_bytes(wire[8:12], "big"))
        now += 0.01  # much faster than 2 RTTs: the window is the bottleneck
    # First update: no previous epoch; second: doubles to 512 KiB; then capped.
    assert deltas[0] == half
    assert deltas[1] == half + INITIAL_WINDOW
    assert all(d <= 2 * INITIAL_WINDOW for d in deltas)


def test_no_auto_tuning_without_rtt_or_when_slow() -> None:
    core = listener_with_stream()
    half = INITIAL_WINDOW // 2
    for now in (0.0, 0.001):
        core.receive_data(h(FrameType.DATA, 0, 1, half) + bytes(half))
        events(core)
        core.consume(1, half, now)
        assert core.data_to_send() == h(FrameType.WINDOW_UPDATE, 0, 1, half)
    core.update_rtt(0.001)
    core.receive_data(h(FrameType.DATA, 0, 1, half) + bytes(half))
    core.consume(1, half, now=10.0)
    assert core.data_to_send() == h(FrameType.WINDOW_UPDATE, 0, 1, half)


def test_data_beyond_window_is_protocol_error_with_go_away() -> None:
    core = listener_with_stream()
    with pytest.raises(RemoteProtocolError, match="window"):
        core.receive_data(h(FrameType.DATA, 0, 1, INITIAL_WINDOW + 1))
    assert core.data_to_send() == GO_AWAY_PROTOCOL_ERROR
    with pytest.raises(LocalProtocolError):
        core.receive_data(b"\x00")


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (bytes.fromhex("01 01 0001 00000001 00000000"), "version"),
        (bytes.fromhex("00 07 0000 00000000 00000000"), "type"),
        (h(FrameType.WINDOW_UPDATE, Flag.SYN, 2, 0), "parity"),
        (h(FrameType.WINDOW_UPDATE, Flag.SYN, 0, 0), "parity"),
        (h(FrameType.WINDOW_UPDATE, Flag.SYN, 1, 0) * 2, "open stream"),
        (h(FrameType.DATA, Flag.SYN | Flag.FIN, 1, 0) + h(FrameType.DATA, 0, 1, 1), "FIN"),
    ],
)
def test_spec_violations(wire: bytes, message: str) -> None:
    core = YamuxConnectionCore(is_initiator=False)
    with pytest.raises(RemoteProtocolError, match=message):
        core.receive_data(wire)
    assert core.data_to_send().endswith(GO_AWAY_PROTOCOL_ERROR)


def test_rst_resets_stream_and_discards_payload() -> None:
    core = listener_with_stream()
    core.receive_data(h(FrameType.DATA, Flag.RST, 1, 3) + b"xyz" + h(FrameType.PING, 1, 0, 1))
    assert events(core) == [StreamResetReceived(1)]
    assert not core.has_stream(1)
    assert core.data_to_send() == h(FrameType.PING, Flag.ACK, 0, 1)


def test_data_on_unknown_stream_is_discarded_and_answered_with_rst() -> None:
    core = YamuxConnectionCore(is_initiator=False)
    core.receive_data(h(FrameType.DATA, 0, 9, 4) + b"lost" + h(FrameType.WINDOW_UPDATE, 0, 9, 5))
    assert events(core) == []
    assert core.data_to_send() == h(FrameType.WINDOW_UPDATE, Flag.RST, 9, 0)


def test_fin_both_ways_forgets_the_stream() -> None:
    a, b = pair()
    stream_id = a.open_stream()
    a.send_data(stream_id, b"hi")
    a.end_stream(stream_id)
    a.end_stream(stream_id)  # idempotent
    assert pump(a, b) == [StreamOpened(stream_id), DataReceived(stream_id, b"hi"), StreamEnded(1)]
    b.end_stream(stream_id)
    assert not b.has_stream(stream_id)
    assert pump(b, a) == [StreamEnded(stream_id)]
    assert not a.has_stream(stream_id)
    assert a.stream_count == b.stream_count == 0


def test_close_stream_then_late_data_gets_rst() -> None:
    a, b = pair()
    stream_id = a.open_stream()
    pump(a, b)
    b.close_stream(stream_id)
    assert pump(b, a) == [StreamEnded(stream_id)]
    a.send_data(stream_id, b"late")
    assert pump(a, b) == []
    assert pump(b, a) == [StreamResetReceived(stream_id)]


def test_local_reset_sends_rst() -> None:
    a, b = pair()
    stream_id = a.open_stream()
    pump(a, b)
    a.reset_stream(stream_id)
    a.reset_stream(stream_id)
    assert a.data_to_send() == h(FrameType.WINDOW_UPDATE, Flag.RST, stream_id, 0)
    with pytest.raises(LocalProtocolError):
        a.send_data(stream_id, b"x")


_VALID_FRAMES = st.lists(
    st.one_of(
        st.binary(max_size=64).map(lambda d: h(FrameType.DATA, 0, 1, len(d)) + d),
        st.integers(0, 2**32 - 1).map(lambda n: h(FrameType.PING, Flag.SYN, 0, n)),
        st.integers(0, 1000).map(lambda n: h(FrameType.WINDOW_UPDATE, 0, 1, n)),
    ),
    max_size=20,
)


@given(frames=_VALID_FRAMES, cuts=st.lists(st.integers(0, 2000), max_size=8))
def test_any_split_of_the_input_gives_the_same_result(frames: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(frames)
    whole = listener_with_stream()
    whole.receive_data(wire)
    expected_data = b"".join(e.data for e in events(whole) if isinstance(e, DataReceived))
    split = listener_with_stream()
    got = b""
    bounds = [0, *sorted(c for c in cuts if c < len(wire)), len(wire)]
    for start, end in itertools.pairwise(bounds):
        split.receive_data(wire[start:end])
        got += b"".join(e.data for e in events(split) if isinstance(e, DataReceived))
    assert got == expected_data == b"".join(f[12:] for f in frames if f[1] == 0)
    assert split.data_to_send() == whole.data_to_send()


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_garbage_raises_only_remote_protocol_error(data: bytes) -> None:
    core = listener_with_stream()
    try:
        core.receive_data(data)
    except RemoteProtocolError:
        assert core.data_to_send().endswith(GO_AWAY_PROTOCOL_ERROR)
    events(core)


def test_large_payload_inside_a_larger_read_is_a_view_small_one_a_copy() -> None:
    core = listener_with_stream()
    wire = h(FrameType.DATA, 0, 1, 3) + b"abc" + h(FrameType.DATA, 0, 1, 2) + b"de"
    core.receive_data(wire)
    got = events(core)
    assert got == [DataReceived(1, b"abc"), DataReceived(1, b"de")]
    assert all(isinstance(e, DataReceived) and isinstance(e.data, bytes) for e in got)
    big = h(FrameType.DATA, 0, 1, 100) + bytes(100) + h(FrameType.DATA, 0, 1, 1) + b"x"
    core.receive_data(big)
    large, small = events(core)
    # The 100-byte payload is most of the read: a view; the 1-byte one is copied.
    assert isinstance(large, DataReceived) and isinstance(large.data, memoryview)
    assert isinstance(small, DataReceived) and small.data == b"x"
    assert isinstance(small.data, bytes)


def test_auto_tuning_grows_even_when_the_idle_rtt_is_tiny() -> None:
    # A loopback ping answers in microseconds, but under load an update takes milliseconds
    # to travel: growth is judged against at least 5 ms per round trip.
    core = listener_with_stream()
    core.update_rtt(0.00005)
    half = INITIAL_WINDOW // 2
    deltas = []
    # 128 KiB at 0 ms (no epoch yet), 128 KiB 3 ms later (grows to 512 KiB), then half of
    # 512 KiB a whole second later (too slow: no growth).
    for now, size in ((0.0, half), (0.003, half), (1.0, INITIAL_WINDOW)):
        core.receive_data(h(FrameType.DATA, 0, 1, size) + bytes(size))
        events(core)
        core.consume(1, size, now)
        deltas.append(int.from_bytes(core.data_to_send()[8:12], "big"))
    assert deltas == [half, half + INITIAL_WINDOW, INITIAL_WINDOW]


def test_keepalive_ping_after_an_idle_interval_then_timeout() -> None:
    config = YamuxConfig(keepalive_interval=30.0, keepalive_timeout=10.0)
    core = YamuxConnectionCore(is_initiator=True, config=config)
    assert core.next_deadline() is None  # no timers before start
    core.start_timers(100.0)
    assert core.next_deadline() == 130.0
    core.receive_data(bytes.fromhex("00 02 0001 00000000 00000009"), now=120.0)  # their ping
    assert core.data_to_send() == bytes.fromhex("00 02 0002 00000000 00000009")
    assert core.next_deadline() == 150.0  # any input postpones the keep-alive
    core.handle_timer(150.0)
    assert core.data_to_send() == bytes.fromhex("00 02 0001 00000000 00000000")
    assert core.next_deadline() == 160.0  # now waiting for the answer
    core.receive_data(bytes.fromhex("00 02 0002 00000000 00000000"), now=150.5)
    assert events(core) == []  # our own keep-alive answer is not reported
    assert core.rtt == 0.5
    assert core.next_deadline() == 180.5
    core.handle_timer(180.5)
    assert core.data_to_send() == bytes.fromhex("00 02 0001 00000000 00000001")
    core.handle_timer(190.5)
    assert events(core) == [PingTimedOut(1)]
    assert core.next_deadline() is None


def test_no_keepalive_when_disabled_but_send_ping_shares_the_counter() -> None:
    core = YamuxConnectionCore(is_initiator=True, config=YamuxConfig(keepalive_interval=None))
    core.start_timers(0.0)
    assert core.next_deadline() is None
    assert [core.send_ping(), core.send_ping()] == [0, 1]
    core.receive_data(bytes.fromhex("00 02 0002 00000000 00000001"), now=1.0)
    assert events(core) == [PingAnswered(1)]  # not ours to time: reported to the driver


def test_rtt_probe_goes_out_with_the_first_window_update_only() -> None:
    core = YamuxConnectionCore(is_initiator=False, config=YamuxConfig(keepalive_interval=None))
    core.start_timers(0.0)
    core.receive_data(h(FrameType.WINDOW_UPDATE, Flag.SYN, 1, 0), now=0.0)
    core.data_to_send()
    half = INITIAL_WINDOW // 2
    core.receive_data(h(FrameType.DATA, 0, 1, half) + bytes(half), now=1.0)
    core.consume(1, half, now=2.0)
    assert core.data_to_send() == h(FrameType.WINDOW_UPDATE, 0, 1, half) + h(
        FrameType.PING, Flag.SYN, 0, 0
    )
    core.receive_data(h(FrameType.PING, Flag.ACK, 0, 0), now=2.25)
    assert events(core) == [StreamOpened(1), DataReceived(1, bytes(half))]
    assert core.rtt == 0.25
    core.receive_data(h(FrameType.DATA, 0, 1, half) + bytes(half), now=3.0)
    core.consume(1, half, now=4.0)
    assert core.data_to_send() == h(FrameType.WINDOW_UPDATE, 0, 1, half)  # no second probe


def test_a_failed_core_keeps_no_timer() -> None:
    core = YamuxConnectionCore(is_initiator=True, config=YamuxConfig(keepalive_interval=5.0))
    core.start_timers(0.0)
    with pytest.raises(RemoteProtocolError):
        core.receive_data(bytes.fromhex("01 00 0000 00000001 00000000"), now=1.0)
    assert core.next_deadline() is None
