"""``DaemonClient``: drives a p2pd-compatible daemon (go-libp2p-daemon, js-libp2p's
@libp2p/daemon-server, ``p2pstack daemon``) over its control socket
(https://github.com/libp2p/go-libp2p-daemon/blob/master/specs/CONTROL.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType

import anyio
import anyio.abc
from multiaddr import Multiaddr

from p2pstack.errors import P2PError
from p2pstack.identity import PeerId
from p2pstack.multiaddrs import parse_multiaddr
from p2pstack.p2pd import _requests as rq
from p2pstack.p2pd._channel import ControlChannel, read_message
from p2pstack.p2pd._codec import (
    MAX_MESSAGE_SIZE,
    PeerInfo,
    StreamInfo,
    decode_stream_info,
    multiaddrs,
    peer_id,
    peer_info,
    stream_info,
)
from p2pstack.p2pd._services import ConnManagerClient, DhtClient, PeerstoreClient, PubsubClient
from p2pstack.p2pd._sockets import listen_control, split_control_addr, widen_buffers

__all__ = ["DaemonClient", "StreamHandler"]

#: A handler of inbound streams: the daemon's ``StreamInfo`` and the stream's bytes. The client
#: closes the stream when the handler returns.
StreamHandler = Callable[[StreamInfo, anyio.abc.ByteStream], Awaitable[None]]

#: Inbound handler connections served at once; more wait in the daemon's dial.
MAX_INBOUND = 256


class DaemonClient:
    """A client of one daemon. Every request opens its own control connection.

    Requests work on a bare instance; :meth:`stream_handler` needs the client entered
    (``async with DaemonClient(addr) as client``), which owns the listener the daemon dials and
    the tasks serving inbound streams; leaving the block stops them.

    Args:
        control_addr: the daemon's control socket, ``/unix/PATH`` or ``/ip4/127.0.0.1/tcp/N``.
        listen_addr: where to listen for the daemon's inbound-stream dials (``/tcp/0`` picks a
            free port; js-libp2p's daemon dials only TCP addresses).
        timeout: default bound, in seconds, of each request up to its first reply.
        max_message_size: the largest control message accepted from the daemon, in bytes.

    Raises:
        ValueError: an address is not a control address.
    """

    def __init__(
        self,
        control_addr: Multiaddr | str,
        *,
        listen_addr: Multiaddr | str = "/ip4/127.0.0.1/tcp/0",
        timeout: float = 30.0,
        max_message_size: int = MAX_MESSAGE_SIZE,
    ) -> None:
        self.control_addr = parse_multiaddr(control_addr)
        self._listen_addr = parse_multiaddr(listen_addr)
        split_control_addr(self.control_addr)  # refuse what cannot be a control socket now
        split_control_addr(self._listen_addr)
        self._channel = ControlChannel(self.control_addr, timeout, max_message_size)
        self.dht = DhtClient(self._channel)
        self.pubsub = PubsubClient(self._channel)
        self.connmanager = ConnManagerClient(self._channel)
        self.peerstore = PeerstoreClient(self._channel)
        self._handlers: dict[str, StreamHandler] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._listener: anyio.abc.SocketListener | None = None
        self._unix_path: str | None = None
        self.handler_addr: Multiaddr | None = None
        self._slots: anyio.Semaphore | None = None

    async def __aenter__(self) -> DaemonClient:
        self._slots = anyio.Semaphore(MAX_INBOUND)  # made here: it binds to the running loop
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None
            if self._listener is not None:
                await self._listener.aclose()
                self._listener = None
            if self._unix_path is not None:
                await anyio.Path(self._unix_path).unlink(missing_ok=True)

    async def identify(self, *, timeout: float | None = None) -> PeerInfo:
        """The daemon's peer ID and listen addresses.

        Raises:
            DaemonError: the daemon refused. DaemonProtocolError: a malformed reply.
            P2PTimeoutError: no reply in time. OSError: the daemon cannot be reached.
        """
        resp = await self._channel.request(rq.identify(), timeout)
        return PeerInfo(peer_id(resp.identify.id), multiaddrs(resp.identify.addrs))

    async def connect(
        self, peer: PeerId, addrs: Sequence[Multiaddr | str], *, timeout: float = 30.0
    ) -> None:
        """Make the daemon connect to ``peer`` at ``addrs`` (errors as :meth:`identify`)."""
        addr_list = [parse_multiaddr(a) for a in addrs]
        await self._channel.request(rq.connect(peer, addr_list, timeout), timeout + 5)

    async def disconnect(self, peer: PeerId, *, timeout: float | None = None) -> None:
        """Make the daemon close its connections to ``peer`` (errors as :meth:`identify`)."""
        await self._channel.request(rq.disconnect(peer), timeout)

    async def list_peers(self, *, timeout: float | None = None) -> tuple[PeerInfo, ...]:
        """The peers the daemon is connected to (errors as :meth:`identify`)."""
        resp = await self._channel.request(rq.list_peers(), timeout)
        return tuple(peer_info(p) for p in resp.peers)

    async def stream_open(
        self, peer: PeerId, protocols: Sequence[str], *, timeout: float = 30.0
    ) -> tuple[StreamInfo, anyio.abc.ByteStream]:
        """Open a stream to ``peer`` through the daemon: the control connection becomes the
        stream. The caller closes it (``aclose``; ``send_eof`` half-closes).

        Raises:
            DaemonError: the daemon could not open it (no connection, protocol refused, ...).
            ValueError: ``protocols`` is empty. Others as :meth:`identify`.
        """
        request = rq.stream_open(peer, protocols, timeout)
        stream, resp = await self._channel.open(request, timeout + 5)
        widen_buffers(stream)
        try:
            info = stream_info(resp.streamInfo)
        except BaseException:
            await stream.aclose()
            raise
        return info, stream

    async def stream_handler(
        self, protocols: Sequence[str], handler: StreamHandler, *, timeout: float | None = None
    ) -> None:
        """Register ``handler`` for inbound streams of ``protocols``: the daemon dials this
        client's listener for each, writes a ``StreamInfo``, then relays the stream. A second
        registration of a protocol replaces the handler. An exception from ``handler``
        propagates out of the client's ``async with`` block.

        Raises:
            RuntimeError: the client was not entered. ValueError: ``protocols`` is empty.
            OSError: cannot listen on ``listen_addr``. Others as :meth:`identify`.
        """
        if self._tg is None:
            raise RuntimeError("stream_handler needs the client entered: async with DaemonClient")
        request = rq.stream_handler(await self._ensure_listener(), protocols)
        await self._channel.request(request, timeout)
        for proto in protocols:
            self._handlers[proto] = handler

    async def _ensure_listener(self) -> Multiaddr:
        if self.handler_addr is not None:
            return self.handler_addr
        assert self._tg is not None
        self._listener, self.handler_addr = await listen_control(self._listen_addr)
        if self.handler_addr.protocols()[0].name == "unix":
            self._unix_path = self.handler_addr.value_for_protocol("unix")
        self._tg.start_soon(self._accept_loop, self._listener)
        return self.handler_addr

    async def _accept_loop(self, listener: anyio.abc.SocketListener) -> None:
        assert self._tg is not None and self._slots is not None
        while True:
            await self._slots.acquire()
            try:
                conn = await listener.accept()
            except BaseException:
                self._slots.release()
                raise
            self._tg.start_soon(self._serve_inbound, conn, self._slots)

    async def _serve_inbound(self, conn: anyio.abc.SocketStream, slots: anyio.Semaphore) -> None:
        """Read the ``StreamInfo``, run the handler. A daemon that sends nothing, garbage or a
        protocol with no handler costs that one connection; so does a handler whose stream
        breaks (a network error). Any other exception from a handler propagates."""
        try:
            async with conn:
                try:
                    with anyio.fail_after(self._channel.timeout):
                        body = await read_message(conn, self._channel.max_message_size)
                    info = decode_stream_info(body)
                except (TimeoutError, *_NETWORK):
                    return
                handler = self._handlers.get(info.protocol)
                if handler is not None:
                    widen_buffers(conn)
                    try:
                        await handler(info, conn)
                    except _NETWORK:
                        return
        finally:
            slots.release()


#: What a broken connection raises: it ends that stream only.
_NETWORK = (
    P2PError,
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)
