"""Fuzz targets for the framing layers: varints, multistream-select, yamux and mplex.

Input layout of the core targets: byte 0 is a control byte (role, how the rest is cut into
``receive_data`` calls, how many streams we open first); the rest is what the peer sent.
"""

from __future__ import annotations

from fuzz._common import CHUNK_SIZES, check, chunks, split_control
from p2pstack.errors import NegotiationError, RemoteProtocolError
from p2pstack.framing import LpDecoder, encode_lp
from p2pstack.multistream import DialerCore, ListenerCore, decode_message
from p2pstack.varint import MAX_UVARINT_LEN, IncompleteVarint, decode_uvarint, encode_uvarint
from transports import mplex, yamux

__all__ = [
    "fuzz_lp",
    "fuzz_mplex_core",
    "fuzz_mplex_frame",
    "fuzz_multistream",
    "fuzz_varint",
    "fuzz_yamux_core",
    "fuzz_yamux_frame",
]

_DIALER_PROTOCOLS = ("/yamux/1.0.0", "/mplex/6.7.0")
_LISTENER_PROTOCOLS = frozenset(("/noise", "/yamux/1.0.0"))
_YAMUX_HEADER = 12
#: A small mplex message limit, so that the fuzzer reaches the size checks with short inputs.
_MPLEX_MAX_MESSAGE = 256
#: A small length-prefix bound, so that the size check is reached with short inputs.
_LP_MAX_SIZE = 300


def fuzz_varint(data: bytes) -> None:
    """Decode a uvarint; a decoded value re-encodes to exactly the bytes it was read from."""
    try:
        value, end = decode_uvarint(data)
    except (IncompleteVarint, RemoteProtocolError):
        return
    check(encode_uvarint(value) == data[:end], f"uvarint {value} was not minimally encoded")


def fuzz_lp(data: bytes) -> None:
    """Feed a length-prefixed message decoder in chunks (control bits 4-5: stop after 1-3
    messages, or never); the messages, re-framed, and the bytes kept are exactly the input."""
    control, wire = split_control(data)
    limit = (control >> 4) & 3
    decoder = LpDecoder(_LP_MAX_SIZE, max_messages=limit or None)
    messages: list[bytes] = []
    try:
        for chunk in chunks(wire, CHUNK_SIZES[(control >> 1) & 7]):
            messages += decoder.feed(chunk)
            if not decoder.done:
                held = decoder.buffered
                check(held < _LP_MAX_SIZE + MAX_UVARINT_LEN, f"{held} bytes held")
    except RemoteProtocolError:
        return
    check(not limit or len(messages) <= limit, "more messages than max_messages")
    again = b"".join(encode_lp(m) for m in messages) + decoder.take_remaining()
    check(again == wire, "messages and remaining bytes differ from the input")


def fuzz_multistream(data: bytes) -> None:
    """Run a dialer or a listener core on the peer's bytes; bytes after the final message are
    handed over as ``leftover``."""
    control, wire = split_control(data)
    try:
        decode_message(wire)
    except RemoteProtocolError:
        pass
    core: DialerCore | ListenerCore
    if control & 1:
        core = DialerCore(_DIALER_PROTOCOLS)
    else:
        core = ListenerCore(_LISTENER_PROTOCOLS.__contains__)
    core.data_to_send()
    fed = 0
    try:
        for chunk in chunks(wire, CHUNK_SIZES[(control >> 1) & 7]):
            core.receive_data(chunk)
            fed += len(chunk)
            core.data_to_send()
            if core.result is not None:
                break
    except (NegotiationError, RemoteProtocolError):
        return
    if core.result is not None:
        allowed = _DIALER_PROTOCOLS if control & 1 else _LISTENER_PROTOCOLS
        check(core.result in allowed, f"agreed on {core.result!r}, which was never offered")
        check(wire[:fed].endswith(core.leftover), "leftover is not the tail of the input")
    else:
        check(not core.leftover, "leftover set before negotiation finished")


def fuzz_yamux_frame(data: bytes) -> None:
    """Decode a yamux header; a decoded header re-encodes to the same 12 bytes."""
    if len(data) < _YAMUX_HEADER:
        return
    try:
        header = yamux.decode_header(data)
    except RemoteProtocolError:
        return
    again = yamux.encode_header(header.type, header.flags, header.stream_id, header.length)
    check(again == data[:_YAMUX_HEADER], "yamux header does not re-encode to its bytes")


def fuzz_yamux_core(data: bytes) -> None:
    """Feed a yamux core the peer's bytes while acting as a driver does: consume what arrives,
    answer new streams, half-close streams the peer half-closed."""
    control, wire = split_control(data)
    core = yamux.YamuxConnectionCore(
        is_initiator=bool(control & 1), config=yamux.YamuxConfig(max_streams=8)
    )
    for _ in range((control >> 4) & 3):
        core.open_stream()
    core.data_to_send()
    now = 0.0
    try:
        for chunk in chunks(wire, CHUNK_SIZES[(control >> 1) & 7]):
            core.receive_data(chunk)
            now += 0.001
            events = _drain_yamux(core, now, reply=bool(control & 0x40))
            # Each frame is at least 12 bytes and makes at most three events.
            bound = 3 * (len(chunk) // _YAMUX_HEADER + 2)
            check(events <= bound, f"{events} events from {len(chunk)} bytes")
    except RemoteProtocolError:
        out = core.data_to_send()
        go_away = yamux.encode_header(yamux.FrameType.GO_AWAY, 0, 0, 1)
        check(out.endswith(go_away), "a protocol error did not queue GoAway(protocol error)")
        check(core.is_going_away, "a failed session still accepts new streams")


def _drain_yamux(core: yamux.YamuxConnectionCore, now: float, *, reply: bool) -> int:
    count = 0
    while (event := core.next_event()) is not None:
        count += 1
        if isinstance(event, yamux.DataReceived):
            check(len(event.data) > 0, "empty DataReceived")
            core.consume(event.stream_id, len(event.data), now)
        elif isinstance(event, yamux.StreamOpened):
            if reply and core.has_stream(event.stream_id):
                core.send_data(event.stream_id, b"pong")
        elif isinstance(event, yamux.StreamEnded) and core.has_stream(event.stream_id):
            core.end_stream(event.stream_id)
    core.data_to_send()
    return count


def fuzz_mplex_frame(data: bytes) -> None:
    """Parse one mplex message; a parsed message re-encodes to exactly its bytes."""
    try:
        parsed = mplex.parse_frame(data, 0, _MPLEX_MAX_MESSAGE)
    except RemoteProtocolError:
        return
    if parsed is None:
        return
    frame, end = parsed
    again = mplex.encode_header(frame.stream_id, frame.flag, len(frame.data)) + frame.data
    check(again == data[:end], "mplex message does not re-encode to its bytes")


def fuzz_mplex_core(data: bytes) -> None:
    """Feed an mplex core the peer's bytes while acting as a driver does: consume or release
    what arrives, answer new streams."""
    control, wire = split_control(data)
    config = mplex.MplexConfig(
        max_message_size=_MPLEX_MAX_MESSAGE,
        max_stream_buffer=1024,
        backpressure_threshold=512,
        max_inbound_streams=4,
    )
    core = mplex.MplexConnectionCore(config)
    for _ in range((control >> 4) & 3):
        core.open_stream()
    core.data_to_send()
    try:
        for chunk in chunks(wire, CHUNK_SIZES[(control >> 1) & 7]):
            core.receive_data(chunk)
            while (event := core.next_event()) is not None:
                if isinstance(event, mplex.DataReceived):
                    if control & 1:
                        core.consumed(event.key, len(event.data))
                    else:
                        core.release(event.key)
                # Events describe the whole chunk: the stream may be reset by now, and writing
                # to it is then our mistake (LocalProtocolError), as in a driver.
                elif (
                    isinstance(event, mplex.StreamOpened)
                    and control & 0x40
                    and core.is_open(event.key)
                ):
                    core.send_data(event.key, b"pong")
            core.data_to_send()
            check(core.inbound_streams <= config.max_inbound_streams, "inbound limit exceeded")
    except RemoteProtocolError as exc:
        check(core.is_closed and core.error is exc, "a protocol error left the core open")
