"""Configuration of the mplex muxer (https://github.com/libp2p/specs/blob/master/mplex/README.md)."""

from __future__ import annotations

import attrs

__all__ = ["MplexConfig"]


_positive = attrs.validators.gt(0)
_positive_float = attrs.validators.gt(0.0)
_non_negative_float = attrs.validators.ge(0.0)


def _optional_positive(_inst: object, attr: attrs.Attribute[float], value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attr.name} must be positive or None, got {value!r}")


@attrs.frozen(kw_only=True)
class MplexConfig:
    """Limits and timing of an mplex connection. Derive variants with ``attrs.evolve``.

    Attributes:
        max_message_size: largest payload of one message, in bytes (default 1 MiB, as
            js-libp2p and go-mplex). A larger incoming message closes the connection with
            ``RemoteProtocolError``; our own writes are split into messages of at most this size.
        max_stream_buffer: bytes received on one stream and not yet read by the application
            (default 4 MiB, js-libp2p's ``maxReadBufferLength``): the hard cap. mplex has no flow
            control, so a stream that would go over this is reset instead of growing without
            bound.
        backpressure_threshold: unread bytes on one stream at which the driver stops reading
            the connection until the application catches up (default 1 MiB): TCP then pushes
            back on the sender, as with go-mplex, instead of losing the stream. At most one
            read plus one message more arrives after pausing, which the hard cap leaves room
            for.
        backpressure_timeout: seconds reading may stay paused for one slow stream (default
            10); then that stream is reset so that the others move again.
        max_inbound_streams: streams the peer may have open towards us at once (default 1024);
            a ``NewStream`` beyond it is answered with a reset.
        max_outbound_streams: streams we may have open at once (default 1024); ``open_stream``
            beyond it raises ``MuxerError``.
        accept_backlog: inbound streams waiting for ``accept_stream`` (default 256, as
            yamux). While it is full the driver stops reading (for up to
            ``backpressure_timeout``), so the peer's further opens wait in TCP; a new stream
            that still arrives while it is full (in the same read, or after that timeout) is
            reset.
        max_stream_opens_per_window: how many ``NewStream`` messages we send within any
            ``stream_open_window`` seconds (default 5; see the module docs of
            ``transports.mplex`` for the js-libp2p rule this keeps under).
        stream_open_window: the pacing window in seconds (default 1.25: js-libp2p's 1 s window
            plus a margin for delivery jitter); 0 disables pacing.
        write_timeout: seconds one write to the underlying connection may block before the
            connection is declared dead (default 30).
        idle_timeout: seconds the reader waits for the next bytes before declaring the
            connection dead (default ``None``: wait forever, so that idle connections stay
            open; dropping them is a connection-manager policy, not the muxer's). mplex has no
            keepalive of its own: set this to detect dead peers on quiet connections.
        read_size: the most bytes asked from the underlying connection per read (default
            256 KiB).
    """

    max_message_size: int = attrs.field(default=1 << 20, validator=_positive)
    max_stream_buffer: int = attrs.field(default=4 << 20, validator=_positive)
    backpressure_threshold: int = attrs.field(default=1 << 20, validator=_positive)
    backpressure_timeout: float = attrs.field(default=10.0, validator=_positive_float)
    max_inbound_streams: int = attrs.field(default=1024, validator=_positive)
    max_outbound_streams: int = attrs.field(default=1024, validator=_positive)
    accept_backlog: int = attrs.field(default=256, validator=_positive)
    max_stream_opens_per_window: int = attrs.field(default=5, validator=_positive)
    stream_open_window: float = attrs.field(default=1.25, validator=_non_negative_float)
    write_timeout: float = attrs.field(default=30.0, validator=_positive_float)
    idle_timeout: float | None = attrs.field(default=None, validator=_optional_positive)
    read_size: int = attrs.field(default=256 << 10, validator=_positive)
