"""The timing half of a QUIC connection's driver: runs aioquic's timers and keep-alive on the
event loop's clock (virtual in the simulator), sends what aioquic produces through the
endpoint, and routes the connection IDs it issues. ``QuicMuxedConnection`` adds streams,
authentication and the host's ``MuxedConnection`` interface on top."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from p2pstack.errors import RemoteProtocolError
from p2pstack.sync import Signal, loop_clock
from transports.quic._handshake import CLOSE_INTERNAL_ERROR

if TYPE_CHECKING:
    from p2pstack.identity import PeerId
    from transports.quic._config import QuicConfig
    from transports.quic._connection import QuicMuxedConnection
    from transports.quic._engine import Libp2pQuic

__all__ = ["DatagramSink", "QuicDriver"]

#: A timer this close is run now, as if at its time: asyncio wakes timers up to one clock
#: resolution early, and waiting again for one already due would spin without time passing
#: (on the simulator's virtual clock, forever).
_TIMER_SLACK = 1e-6


class DatagramSink(Protocol):
    """What a connection needs from its endpoint (``QuicEndpoint``)."""

    async def send(self, datagrams: list[tuple[bytes, tuple[str, int]]]) -> None:
        """Send datagrams, waiting for room in the socket buffer. Never raises for the network."""
        ...

    def send_nowait(self, datagrams: list[tuple[bytes, tuple[str, int]]]) -> None:
        """Send what fits now; drop the rest. Never raises."""
        ...

    def register(self, cid: bytes, conn: QuicMuxedConnection) -> None:
        """Route datagrams addressed to ``cid`` to ``conn``."""
        ...

    def unregister(self, cid: bytes) -> None:
        """Stop routing ``cid``. Idempotent."""
        ...


class QuicDriver:
    """Timers, sending and connection IDs of one connection (a base class).

    Subclasses implement ``_process_events`` (called after timers ran) and ``close_now``
    (called when aioquic fails), and set ``remote_peer`` once the peer is authenticated (the
    keep-alive only runs then).
    """

    def __init__(self, quic: Libp2pQuic, sink: DatagramSink, config: QuicConfig) -> None:
        self.quic = quic
        self._sink = sink
        self._config = config
        self._clock = loop_clock()
        self._wake = Signal()
        self._dirty = False
        self._waiting_until: float | None = None
        self._cids: set[bytes] = set()
        self._last_rx = self._clock()
        self._ping_uid = 0
        self._closed = False
        self.remote_peer: PeerId | None = None

    def _process_events(self) -> None:
        raise NotImplementedError

    def close_now(
        self, code: int, reason: str, error: BaseException | None, *, silent: bool = False
    ) -> None:
        raise NotImplementedError

    # -- connection IDs (``_cids``: those routed to this connection) --------------------------

    def _retire_cid(self, cid: bytes) -> None:
        self._cids.discard(cid)
        self._sink.unregister(cid)

    def _release_cids(self) -> None:
        for cid in self._cids:
            self._sink.unregister(cid)
        self._cids.clear()

    # -- sending and timers -----------------------------------------------------------------

    async def after_receive(self) -> None:
        """Send what the datagrams received produced (ACKs, data the new window allows)."""
        if self._closed:
            return
        datagrams = self.quic.datagrams_to_send(self._clock())
        if datagrams:
            await self._sink.send(datagrams)
        timer = self.quic.get_timer()
        waiting = self._waiting_until
        if timer is not None and (waiting is None or timer < waiting):
            self._kick()

    def _kick(self) -> None:
        if not self._dirty:
            self._dirty = True
            self._wake.set()

    async def _drive(self, done: Callable[[], bool]) -> None:
        """Wait for timers and kicks, run them, and send, until ``done()``."""
        while not done():
            deadline = self._next_deadline()
            if not self._dirty:
                self._waiting_until = deadline
                if deadline is None:
                    await self._wake.wait()
                else:
                    await self._wake.wait_until(deadline)
                self._waiting_until = None
            self._dirty = False
            if self._closed:
                break
            now = self._clock()
            try:
                if deadline is not None and now >= deadline - _TIMER_SLACK:
                    now = max(now, deadline)
                    self._on_deadline(now)
                datagrams = self.quic.datagrams_to_send(now)
            except Exception as exc:  # as in datagram_received: end only this connection
                error = RemoteProtocolError(f"QUIC connection failed: {exc!r}")
                self.close_now(CLOSE_INTERNAL_ERROR, "internal error", error, silent=True)
                break
            if datagrams:
                await self._sink.send(datagrams)

    def _next_deadline(self) -> float | None:
        timer = self.quic.get_timer()
        keep_alive = self._config.keep_alive
        if keep_alive is None or self.remote_peer is None:
            return timer
        ping_at = self._last_rx + keep_alive
        return ping_at if timer is None else min(timer, ping_at)

    def _on_deadline(self, now: float) -> None:
        quic = self.quic
        timer = quic.get_timer()
        if timer is not None and now >= timer:
            quic.handle_timer(now)
            if quic.get_timer() == timer:
                # aioquic's loss timer is sent time + delay, and it declares a packet lost when
                # sent time <= now - delay: rounding can leave it due but unfired, which on a
                # virtual clock (time stands still) would repeat forever.
                quic.handle_timer(timer + _TIMER_SLACK)
        keep_alive = self._config.keep_alive
        alive = self.remote_peer is not None
        if keep_alive is not None and alive and now >= self._last_rx + keep_alive:
            self._ping_uid += 1
            self.quic.send_ping(self._ping_uid)
            self._last_rx = now
        self._process_events()
