"""The rendezvous point service: a thin anyio driver around ``Registry``
(https://github.com/libp2p/specs/blob/master/rendezvous/README.md#interaction).

A client may send several requests on one stream (py-libp2p's point reads until the end of the
stream; rust-libp2p opens one stream per request): each is answered in turn, up to
``max_requests_per_stream``. A malformed request resets the stream; nothing a client sends
reaches the host as an error.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import anyio
import attrs

from p2pstack.errors import NETWORK_ERRORS
from p2pstack.framing import read_lp, write_lp
from p2pstack.sansio import TimerDriver
from protocols.discovery.rendezvous._registry import Registry, RegistryConfig, RegistryStatistics
from protocols.discovery.rendezvous._wire import MAX_REQUEST_SIZE, PROTOCOL_ID

if TYPE_CHECKING:
    from p2pstack.host import Host, Stream

__all__ = ["PointStatistics", "RendezvousPoint"]

_log = logging.getLogger(__name__)
# P2PError (in NETWORK_ERRORS) covers RemoteProtocolError.
_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *NETWORK_ERRORS)


@attrs.frozen(kw_only=True)
class PointStatistics:
    """Counters of a rendezvous point.

    Attributes:
        registry: the registry's counters.
        requests: requests answered (UNREGISTER included).
        bad_streams: streams reset for a malformed request, a timeout or a network error.
    """

    registry: RegistryStatistics
    requests: int
    bad_streams: int


class RendezvousPoint:
    """Serves ``/rendezvous/1.0.0``: peers register in namespaces and discover each other.

    Args:
        config: the registry's limits (TTLs, namespaces, per-peer and total registrations).
        timeout: seconds a stream may take to deliver each request and take its response.
        max_streams: rendezvous streams served at once, all peers together.
        max_streams_per_peer: at once from one peer.
        max_requests_per_stream: requests answered on one stream before it is closed.
        nonce: 8 bytes naming this point in its cookies (random by default).
    """

    def __init__(
        self,
        config: RegistryConfig | None = None,
        *,
        timeout: float = 10.0,
        max_streams: int = 128,
        max_streams_per_peer: int = 4,
        max_requests_per_stream: int = 64,
        nonce: bytes | None = None,
    ) -> None:
        self.registry = Registry(config, nonce=nonce if nonce is not None else os.urandom(8))
        self._timeout = timeout
        self._max_streams = max_streams
        self._max_per_peer = max_streams_per_peer
        self._max_requests = max_requests_per_stream
        self._timers = TimerDriver(self.registry, on_fire=_nothing)
        self._requests = 0
        self._bad_streams = 0

    def statistics(self) -> PointStatistics:
        """A snapshot of the counters."""
        return PointStatistics(
            registry=self.registry.statistics(),
            requests=self._requests,
            bad_streams=self._bad_streams,
        )

    async def start(self, host: Host) -> None:
        """Register the stream handler and start the expiry timer."""
        host.set_stream_handler(
            PROTOCOL_ID,
            self._handle,
            max_inbound=self._max_streams,
            max_inbound_per_peer=self._max_per_peer,
        )
        host.start_soon(self._timers.run, name="rendezvous expiry")

    async def stop(self) -> None:
        """Nothing to flush: registrations live only in memory."""

    async def _handle(self, stream: Stream) -> None:
        peer = stream.remote_peer
        try:
            for _ in range(self._max_requests):
                with anyio.fail_after(self._timeout):
                    try:
                        data = await read_lp(stream, max_size=MAX_REQUEST_SIZE)
                    except anyio.EndOfStream:
                        return
                    response = self.registry.handle_request(peer, data, anyio.current_time())
                    self._requests += 1
                    self._timers.poke()
                    if response is not None:
                        await write_lp(stream, response)
        except _ERRORS as exc:
            self._bad_streams += 1
            _log.debug("rendezvous stream from %s reset: %r", peer, exc)
            await stream.reset()


async def _nothing() -> None:
    """Expiry has no output to drain."""
