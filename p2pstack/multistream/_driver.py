"""anyio driver for multistream-select 1.0: pumps a ``ByteStream`` through the sans-IO cores
(https://github.com/libp2p/specs/blob/master/connections/README.md#protocol-negotiation).

The stream belongs to the caller before, during and after negotiation: on error these functions
neither close nor reset it (the upgrader closes raw connections, the host resets streams).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import anyio

from p2pstack.errors import NegotiationError, P2PTimeoutError, RemoteProtocolError
from p2pstack.interfaces import ByteStream
from p2pstack.multistream._core import DialerCore, ListenerCore

__all__ = ["LazyOutbound", "negotiate_inbound", "negotiate_outbound"]

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
                try:
                    core.receive_data(data)
                except RemoteProtocolError:
                    # A listener that refused an optimistic proposal reads the dialer's protocol
                    # data as the next proposal and fails on it: the ``na`` queued before must
                    # still reach the dialer, or it sees a bare reset instead of a refusal.
                    if out := core.data_to_send():
                        await stream.send(out)
                    raise
    except TimeoutError as exc:
        if isinstance(exc, P2PTimeoutError):
            raise
        raise P2PTimeoutError(
            f"{direction} protocol negotiation timed out after {seconds} s"
        ) from None


class LazyOutbound:
    """Optimistic ("lazy") multistream-select of one protocol, as go-libp2p's lazy client does:
    the header and the proposal go out with the first protocol data, without waiting for the
    listener's echo, which is read and checked before the first protocol bytes are returned.
    Saves a round trip per stream; a listener that refuses the protocol is seen as
    ``ProtocolNotSupported`` on that first read instead of when the stream opens.

    Args:
        protocol: the single protocol ID proposed.
        timeout: seconds ``finish`` may wait for the listener's answer (``math.inf`` for none).

    Raises:
        ValueError: ``protocol`` is not a valid protocol ID.
    """

    def __init__(self, protocol: str, *, timeout: float = 10.0) -> None:
        self.protocol = protocol
        self._core = DialerCore((protocol,))
        self._timeout = timeout
        #: Header and proposal, to be written before (and with) the first protocol data.
        self.proposal = self._core.data_to_send()

    async def finish(self, stream: ByteStream) -> bytes:
        """Read the listener's header and answer; call after ``proposal`` was written.
        Cancel-safe: a later call goes on where a cancelled one stopped.

        Returns:
            The protocol bytes read past the listener's confirmation.

        Raises:
            ProtocolNotSupported: the listener refused the protocol.
            NegotiationError, RemoteProtocolError, P2PTimeoutError, anyio.BrokenResourceError,
            StreamReset: as ``negotiate_outbound``.
        """
        _, leftover = await _negotiate(stream, self._core, self._timeout, "outbound")
        return leftover
