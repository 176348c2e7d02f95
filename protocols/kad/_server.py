"""Inbound side of the ``Kad`` service: serves DHT streams with the sans-IO ``RequestHandler``
(https://github.com/libp2p/specs/blob/master/kad-dht/README.md#rpc-messages).

A stream may carry several requests (go and js reuse streams); they are answered in order, one
at a time. Bounds: ``max_inbound_streams`` streams at once, ``max_inbound_per_peer`` of them from
one peer (a stream beyond either is reset and counted), ``max_message_size`` per message, and
``idle_timeout`` seconds of silence before a stream is reset. A malformed, oversized or invalid
request resets its stream and is counted; it never reaches the rest of the host.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from p2pstack.errors import NETWORK_ERRORS
from protocols.kad._client import read_message
from protocols.kad._types import KadMessage, KadPeer, KadProtocolError, RecordValidationError
from protocols.kad._wire import KadMessageDecoder, frame

if TYPE_CHECKING:
    from p2pstack.host import Stream
    from p2pstack.identity import PeerId
    from protocols.kad._config import KadConfig
    from protocols.kad._events import Counters
    from protocols.kad._handler import RequestHandler

__all__ = ["InboundServer"]

_log = logging.getLogger(__name__)


class InboundServer:
    """Admits, reads, answers and bounds inbound DHT streams (see the module docstring).

    Args:
        handler: the sans-IO request handler.
        config: the service's settings (bounds and timeouts).
        counters: where to count requests, rejections and bad input.
        peer_info: the ``KadPeer`` describing a peer (the sender of a request).
        on_stream: called with the remote peer of each admitted stream.
        clock: the current time (the anyio clock).
    """

    def __init__(
        self,
        *,
        handler: RequestHandler,
        config: KadConfig,
        counters: Counters,
        peer_info: Callable[[PeerId], KadPeer],
        on_stream: Callable[[PeerId], None],
        clock: Callable[[], float],
    ) -> None:
        self._handler = handler
        self._config = config
        self._counters = counters
        self._peer_info = peer_info
        self._on_stream = on_stream
        self._clock = clock
        self._per_peer: dict[PeerId, int] = {}
        self.active = 0

    async def handle_stream(self, stream: Stream) -> None:
        """The stream handler registered with the host.

        Raises:
            BaseException: only cancellation; network errors, timeouts and bad input end the
                stream and are counted.
        """
        peer = stream.remote_peer
        held = self._per_peer.get(peer, 0)
        if (
            self.active >= self._config.max_inbound_streams
            or held >= self._config.max_inbound_per_peer
        ):
            self._counters.inbound_rejected += 1
            await stream.reset()
            return
        self.active += 1
        self._per_peer[peer] = held + 1
        try:
            self._on_stream(peer)
            await self._serve(stream, peer)
        finally:
            self.active -= 1
            if (left := self._per_peer[peer] - 1) > 0:
                self._per_peer[peer] = left
            else:
                del self._per_peer[peer]

    async def _serve(self, stream: Stream, peer: PeerId) -> None:
        decoder = KadMessageDecoder(self._config.max_message_size)
        pending: deque[KadMessage] = deque()
        while True:
            try:
                with anyio.fail_after(self._config.idle_timeout):
                    request = await read_message(stream, decoder, pending)
                answer = self._answer(request, peer)
                if answer is not None:
                    with anyio.fail_after(self._config.request_timeout):
                        await stream.send(frame(answer))
            except anyio.EndOfStream:
                return
            except TimeoutError:
                self._counters.inbound_timeouts += 1
                await stream.reset()
                return
            except (KadProtocolError, RecordValidationError) as exc:
                self._counters.inbound_bad += 1
                _log.debug("bad DHT request from %s: %s", peer, exc)
                await stream.reset()
                return
            except NETWORK_ERRORS as exc:
                _log.debug("DHT stream from %s failed: %r", peer, exc)
                await stream.reset()
                return

    def _answer(self, request: KadMessage, peer: PeerId) -> KadMessage | None:
        answer = self._handler.handle(request, self._peer_info(peer), self._clock())
        self._counters.inbound_requests += 1
        return answer
