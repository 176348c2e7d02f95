"""anyio driver for multistream-select 1.0: pumps a ``ByteStream`` through the sans-IO cores
(https://github.com/libp2p/specs/blob/master/connections/README.md#protocol-negotiation).

The stream belongs to the caller before, during and after negotiation: on error these functions
neither close nor reset it (the upgrader closes raw connections, the host resets streams).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import anyio

from p2pstack.errors import NegotiationError, P2PTimeoutError
from p2pstack.interfaces import ByteStream
from p2pstack.multistream._core import DialerCore, ListenerCore

__all__ = ["negotiate_inbound", "negotiate_outbound"]

#: Bytes asked for per read; anything read past the final message comes back as ``leftover``.
_READ_SIZE = 65536


async def negotiate_outbound(
    stream: ByteStream,
    protocols: Sequence[str],
    *,
    # The interface promises a bounded wait by default; callers may still nest fail_after.
    timeout: float = 10.0,
) -> tuple[str, bytes]:
    """Propose ``protocols`` in order on ``stream`` as the dialer.

    Args:
        stream: a fresh stream or connection; nothing may have been read from or written to it.
        protocols: protocol IDs in order of preference.
        timeout: seconds the whole negotiation may take (``math.inf`` for none).

    Returns:
        ``(protocol, leftover)``: the protocol the listener accepted and the bytes read past its
        confirmation, which belong to that protocol (wrap the stream with
        ``p2pstack.streams.PrefixedConnection`` to replay them).

    Raises:
        ValueError: ``protocols`` is empty or holds an invalid protocol ID.
        ProtocolNotSupported: the listener refused every protocol.
        NegotiationError: the listener does not speak multistream-select 1.0, or the stream
            ended during negotiation.
        RemoteProtocolError: the listener sent a malformed or unexpected message.
        P2PTimeoutError: negotiation took longer than ``timeout``.
        anyio.BrokenResourceError, StreamReset: the stream failed (passed through unchanged).
    """
    return await _negotiate(stream, DialerCore(protocols), timeout, "outbound")


async def negotiate_inbound(
    stream: ByteStream,
    supports: Callable[[str], bool] | Collection[str],
    *,
    timeout: float = 10.0,
) -> tuple[str, bytes]:
    """Answer a dialer's proposals on ``stream`` as the listener.

    Args:
        stream: a fresh stream or connection; nothing may have been read from or written to it.
        supports: the protocol IDs we serve, as a predicate or a collection (a mapping's keys
            count; a single ``str`` is taken as one protocol ID).
        timeout: seconds the whole negotiation may take (``math.inf`` for none).

    Returns:
        ``(protocol, leftover)``: the protocol accepted and any bytes the dialer sent after
        proposing it (an optimistic dialer may send protocol data before our confirmation).

    Raises:
        NegotiationError: the dialer does not speak multistream-select 1.0, or the stream ended
            during negotiation.
        RemoteProtocolError: the dialer sent a malformed message or too many refused proposals.
        P2PTimeoutError: negotiation took longer than ``timeout``.
        anyio.BrokenResourceError, StreamReset: the stream failed (passed through unchanged).
    """
    if isinstance(supports, str):
        only = supports
        predicate: Callable[[str], bool] = lambda proto: proto == only  # noqa: E731
    elif callable(supports):
        predicate = supports
    else:
        predicate = supports.__contains__
    return await _negotiate(stream, ListenerCore(predicate), timeout, "inbound")


async def _negotiate(
    stream: ByteStream, core: DialerCore | ListenerCore, seconds: float, direction: str
) -> tuple[str, bytes]:
    try:
        with anyio.fail_after(seconds):
            while True:
                out = core.data_to_send()
                if out:
                    await stream.send(out)
                result = core.result
                if result is not None:
                    return result, core.leftover
                try:
                    data = await stream.receive(_READ_SIZE)
                except anyio.EndOfStream:
                    raise NegotiationError(
                        f"stream ended during {direction} protocol negotiation"
                    ) from None
                core.receive_data(data)
    except TimeoutError as exc:
        if isinstance(exc, P2PTimeoutError):
            raise
        raise P2PTimeoutError(
            f"{direction} protocol negotiation timed out after {seconds} s"
        ) from None
