"""yamux settings: flow-control windows, stream limits, keep-alive and timeouts
(https://github.com/libp2p/specs/blob/master/yamux/README.md)."""

from __future__ import annotations

import attrs

from transports.yamux._frame import INITIAL_WINDOW, MAX_U32

__all__ = ["YamuxConfig"]


_positive_or_none = attrs.validators.optional(attrs.validators.gt(0.0))
_DEFAULT_KEEPALIVE: float | None = 30.0


@attrs.frozen(kw_only=True)
class YamuxConfig:
    """Settings of a yamux connection; derive variants with ``attrs.evolve``.

    Memory bound per connection: a stream's receive buffer never exceeds the window granted to
    it (256 KiB, growing to at most ``max_window``); the sum of the windows beyond 256 KiB is
    capped by ``max_connection_window``; outbound bytes queued for the socket are capped by
    ``max_write_buffer`` (plus small control frames).

    Attributes:
        max_streams: open streams allowed at once (both directions); an inbound stream beyond it
            is reset, ``open_stream`` beyond it raises ``MuxerError``. 1 .. 2**31.
        accept_backlog: inbound streams waiting for ``accept_stream``; beyond it new inbound
            streams are reset. >= 1.
        max_window: largest receive window one stream may grow to by auto-tuning (the window
            doubles while the reader drains it within about two round trips). 256 KiB .. 4 GiB-1.
        max_connection_window: total receive window (all streams) beyond which auto-tuning stops
            growing windows. >= 256 KiB.
        max_message_size: largest Data payload we send in one frame. 1 KiB .. 16 MiB.
        max_write_buffer: outbound bytes queued before ``send`` waits for the socket. >= 64 KiB.
        read_size: bytes requested per read from the secure connection. >= 1 KiB.
        keepalive_interval: seconds without any inbound frame after which a keep-alive ping
            is sent (traffic, the peer's pings included, proves the connection alive);
            ``None`` disables them.
        keepalive_timeout: seconds a ping may go unanswered before the connection is closed.
        write_timeout: seconds one write to the secure connection may block before the
            connection is closed.
        close_timeout: seconds ``aclose`` waits to flush the GoAway frame.
    """

    max_streams: int = attrs.field(
        default=1000, validator=[attrs.validators.ge(1), attrs.validators.le(2**31)]
    )
    accept_backlog: int = attrs.field(default=256, validator=attrs.validators.ge(1))
    max_window: int = attrs.field(
        default=16 * 1024 * 1024,
        validator=[attrs.validators.ge(INITIAL_WINDOW), attrs.validators.le(MAX_U32)],
    )
    max_connection_window: int = attrs.field(
        default=256 * 1024 * 1024, validator=attrs.validators.ge(INITIAL_WINDOW)
    )
    max_message_size: int = attrs.field(
        default=64 * 1024,
        validator=[attrs.validators.ge(1024), attrs.validators.le(16 * 1024 * 1024)],
    )
    max_write_buffer: int = attrs.field(default=1024 * 1024, validator=attrs.validators.ge(65536))
    read_size: int = attrs.field(default=256 * 1024, validator=attrs.validators.ge(1024))
    keepalive_interval: float | None = attrs.field(
        default=_DEFAULT_KEEPALIVE, validator=_positive_or_none
    )
    keepalive_timeout: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    write_timeout: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    close_timeout: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
