"""The daemon's control server: accepts control connections, reads varint-prefixed requests
(several per connection, as go's client sends them, or one, as js's does), answers each, and
hands the connection over to a stream or a subscription when a request asks for that.

A control client cannot harm the node: requests are bounded (``MAX_MESSAGE_SIZE``), must arrive
within ``ServerConfig.request_timeout``, at most ``max_connections`` are served at once, and
whatever a request fails with comes back as an ERROR response on that connection only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import attrs
from multiaddr import Multiaddr

from p2pstack.errors import NETWORK_ERRORS
from p2pstack.framing import encode_lp
from p2pstack.identity import PeerId
from p2pstack.p2pd.pb import p2pd_pb2 as pb
from p2pstack.peerstore import ADDR_TTL_RECENT
from p2pstack.roots.daemon import _wire as w

if TYPE_CHECKING:
    from p2pstack.host import Host
    from protocols.kad import Kad
    from protocols.pubsub import Pubsub

__all__ = ["ControlConnection", "DaemonServer", "ServerConfig", "Unavailable"]

_log = logging.getLogger("p2pstack.roots.daemon")

#: A control connection: an anyio byte stream (unix or TCP socket).
ControlConnection = anyio.abc.ByteStream


class Unavailable(Exception):
    """The daemon runs without what a request needs (the DHT, pubsub)."""


@attrs.frozen(kw_only=True)
class ServerConfig:
    """Bounds of the control server.

    Attributes:
        max_connections: control connections served at once; more are closed at once.
        request_timeout: seconds a connection may take to send its next complete request.
        default_timeout: seconds a CONNECT, STREAM_OPEN or DHT request may take when the
            request gives no timeout (go's daemon: 60 s for DHT requests).
    """

    max_connections: int = 512
    request_timeout: float = 300.0
    default_timeout: float = 60.0


#: What a failing request may raise; anything else is a bug and propagates.
EXPECTED: tuple[type[BaseException], ...] = (
    w.ControlError,
    Unavailable,
    TimeoutError,
    ValueError,
    *NETWORK_ERRORS,
)
#: What a closed or broken control connection raises.
CLOSED: tuple[type[BaseException], ...] = (
    *NETWORK_ERRORS,
    anyio.EndOfStream,
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
)


def describe(exc: BaseException) -> str:
    """A readable one-line message for an ERROR response."""
    if isinstance(exc, TimeoutError) and not str(exc):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


class DaemonServer:
    """Serves the p2pd control protocol for one host.

    Args:
        host: the node.
        kad: its DHT service, if it runs one.
        pubsub: its pubsub service, if it runs one.
        config: the bounds.
    """

    def __init__(
        self,
        host: Host,
        *,
        kad: Kad | None = None,
        pubsub: Pubsub | None = None,
        config: ServerConfig | None = None,
    ) -> None:
        from p2pstack.roots.daemon._streams import StreamHandlers

        self.host = host
        self.kad = kad
        self.pubsub = pubsub
        self.config = config or ServerConfig()
        self.handlers = StreamHandlers(host)
        self._active = 0
        self._idle = anyio.Event()
        self._idle.set()

    @property
    def active_connections(self) -> int:
        """Control connections being served now."""
        return self._active

    async def wait_idle(self) -> None:
        """Wait until no control connection is being served."""
        while self._active:
            await self._idle.wait()

    async def serve(self, listener: anyio.abc.Listener[anyio.abc.SocketStream]) -> None:
        """Accept control connections from ``listener`` until cancelled."""
        await listener.serve(self._connection_task)

    async def _connection_task(self, conn: ControlConnection) -> None:
        if self._active >= self.config.max_connections:
            await _close(conn)
            return
        self._active += 1
        if self._idle.is_set():
            self._idle = anyio.Event()
        try:
            await self.handle_connection(conn)
        finally:
            self._active -= 1
            if not self._active:
                self._idle.set()

    async def handle_connection(self, conn: ControlConnection) -> None:
        """Serve one control connection until the client closes it or a request takes it over.

        The connection is closed on return.
        """
        decoder = w.RequestDecoder()
        pending: list[bytes] = []
        try:
            while True:
                if not pending:
                    pending = await self._read_requests(conn, decoder)
                    if not pending:
                        return
                body = pending.pop(0)
                try:
                    command = w.parse_request(body)
                except w.ControlError as exc:
                    await conn.send(w.encode(w.error_response(str(exc))))
                    continue
                rest = b"".join(encode_lp(b) for b in pending) + decoder.take_remaining()
                if await self.dispatch(command, conn, rest):
                    return  # the connection was handed over (and closed) by the request
        except w.ControlError as exc:
            await _send_quietly(conn, w.error_response(str(exc)))
        except CLOSED:
            pass
        finally:
            await _close(conn)

    async def _read_requests(
        self, conn: ControlConnection, decoder: w.RequestDecoder
    ) -> list[bytes]:
        """The next complete requests, or ``[]`` when the client closed the connection."""
        with anyio.fail_after(self.config.request_timeout):
            while True:
                try:
                    data = await conn.receive(65536)
                except anyio.EndOfStream:
                    if decoder.buffered:
                        raise w.ControlError("connection closed inside a request") from None
                    return []
                bodies = decoder.feed(data)
                if bodies:
                    return bodies

    async def dispatch(self, command: w.Command, conn: ControlConnection, rest: bytes) -> bool:
        """Answer one request on ``conn``.

        Args:
            command: the parsed request.
            conn: its control connection.
            rest: bytes the client sent after the request (the start of a piped stream).

        Returns:
            True when the request took the connection over (a stream, a subscription, a
            streamed DHT answer): no more requests are read from it.
        """
        try:
            match command:
                case w.StreamOpen():
                    from p2pstack.roots.daemon._streams import open_stream

                    return await open_stream(self, command, conn, rest)
                case w.Dht():
                    from p2pstack.roots.daemon._dht import handle_dht

                    return await handle_dht(self, command, conn)
                case w.PubsubCommand():
                    from p2pstack.roots.daemon._pubsub import handle_pubsub

                    return await handle_pubsub(self, command, conn)
                case _:
                    response = await self._simple(command)
        except EXPECTED as exc:
            response = w.error_response(describe(exc))
        await conn.send(w.encode(response))
        return False

    async def _simple(self, command: w.Command) -> pb.Response:
        host = self.host
        response = w.ok_response()
        match command:
            case w.Identify():
                response.identify.id = host.peer_id.to_bytes()
                response.identify.addrs.extend(a.to_bytes() for a in host.listen_addrs)
            case w.ListPeers():
                seen: dict[PeerId, Multiaddr] = {}
                for conn in host.connections():
                    seen.setdefault(conn.remote_peer, conn.remote_multiaddr)
                response.peers.extend(w.peer_info(p, [a]) for p, a in seen.items())
            case w.Connect():
                await self.connect(command)
            case w.Disconnect():
                await host.disconnect(command.peer)
            case w.StreamHandler():
                self.handlers.register(command.addr, command.protocols)
            case w.ConnManager():
                await self._connmanager(command)
            case w.Peerstore():
                self._peerstore(command, response)
            case _:  # the other commands take the connection over (dispatch)
                raise w.ControlError(f"unexpected request {type(command).__name__}")
        return response

    async def connect(self, command: w.Connect) -> None:
        """Dial ``command.peer`` (through the given addresses, else the known ones)."""
        host = self.host
        if command.peer == host.peer_id:
            raise w.ControlError("cannot connect to self")
        addrs = [a for a in (_without_p2p(a, command.peer) for a in command.addrs) if a]
        with anyio.fail_after(command.timeout or self.config.default_timeout):
            if addrs:
                host.peerstore.add_addrs(command.peer, addrs, ADDR_TTL_RECENT)
                errors: list[BaseException] = []
                for addr in addrs:  # explicit addresses are tried even in dial backoff
                    try:
                        await host.connect(addr.encapsulate(f"/p2p/{command.peer}"))
                        return
                    except NETWORK_ERRORS as exc:
                        errors.append(exc)
                raise errors[-1]
            await host.dial_peer(command.peer)

    async def _connmanager(self, command: w.ConnManager) -> None:
        connmgr = self.host.connmgr
        if command.op == "TRIM":
            await connmgr.trim()
            return
        assert command.peer is not None and command.tag is not None  # checked by the parser
        if command.op == "TAG_PEER":
            connmgr.tag_peer(command.peer, command.tag, command.weight)
        else:
            connmgr.untag_peer(command.peer, command.tag)

    def _peerstore(self, command: w.Peerstore, response: pb.Response) -> None:
        store = self.host.peerstore
        if command.op == "GET_PROTOCOLS":
            response.peerStore.protos.extend(store.protocols(command.peer))
        else:
            addrs = store.addrs(command.peer)
            response.peerStore.peer.CopyFrom(w.peer_info(command.peer, addrs))


def _without_p2p(addr: Multiaddr, peer: PeerId) -> Multiaddr | None:
    """``addr`` without a trailing ``/p2p/<peer>`` (None if it names another peer)."""
    named = addr.get_peer_id()
    if named is None:
        return addr
    if named != str(peer):
        return None
    return addr.decapsulate(f"/p2p/{named}")


async def _send_quietly(conn: ControlConnection, response: pb.Response) -> None:
    try:
        with anyio.fail_after(5):
            await conn.send(w.encode(response))
    except CLOSED:  # TimeoutError is an OSError, among them
        pass


async def _close(conn: ControlConnection) -> None:
    with anyio.CancelScope(shield=True):
        try:
            await conn.aclose()
        except CLOSED:
            pass
