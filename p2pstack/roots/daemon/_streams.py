"""STREAM_OPEN (the control connection becomes the stream) and STREAM_HANDLER (each inbound
stream of a registered protocol is forwarded to a connection the daemon dials to the client,
which first receives one varint-prefixed ``StreamInfo``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio
from multiaddr import Multiaddr

from p2pstack.errors import NETWORK_ERRORS
from p2pstack.p2pd import widen_buffers
from p2pstack.p2pd.pb import p2pd_pb2 as pb
from p2pstack.roots.daemon import _wire as w
from p2pstack.roots.daemon._pipe import pipe

if TYPE_CHECKING:
    from p2pstack.connection import Stream
    from p2pstack.host import Host
    from p2pstack.roots.daemon._server import ControlConnection, DaemonServer

__all__ = ["StreamHandlers", "component", "connect_control_addr", "open_stream", "stream_info"]

_DIAL_FAILED: tuple[type[BaseException], ...] = (*NETWORK_ERRORS, TimeoutError, ValueError)

#: Most protocols clients may register in all (each is a stream handler of the node).
MAX_HANDLERS = 256
#: Seconds the daemon gives itself to dial a client's handler address and send the StreamInfo.
HANDLER_DIAL_TIMEOUT = 10.0


def stream_info(stream: Stream) -> pb.StreamInfo:
    """The ``StreamInfo`` describing ``stream`` (peer, its connection's remote address,
    protocol)."""
    conn = stream.connection
    return pb.StreamInfo(
        peer=conn.remote_peer.to_bytes(),
        addr=conn.remote_multiaddr.to_bytes(),
        proto=stream.protocol,
    )


async def open_stream(
    server: DaemonServer, command: w.StreamOpen, conn: ControlConnection, rest: bytes
) -> bool:
    """Open the stream, answer OK with its ``StreamInfo``, then pipe the connection into it.

    Returns:
        True (the connection is taken over), or False after an ERROR answer.
    """
    from p2pstack.roots.daemon._server import EXPECTED, describe

    host = server.host
    try:
        with anyio.fail_after(command.timeout or server.config.default_timeout):
            connection = await host.dial_peer(command.peer)
            # Negotiated eagerly (not optimistically) so that a refusal is an ERROR answer.
            stream = await connection.new_stream(list(command.protocols))
    except EXPECTED as exc:
        await conn.send(w.encode(w.error_response(describe(exc))))
        return False
    response = w.ok_response()
    response.streamInfo.CopyFrom(stream_info(stream))
    try:
        await conn.send(w.encode(response))
    except BaseException:
        with anyio.CancelScope(shield=True):
            await stream.reset()
        raise
    widen_buffers(conn)
    await pipe(conn, stream, first=rest)
    return True


async def connect_control_addr(addr: Multiaddr) -> anyio.abc.SocketStream:
    """Dial a client's ``/unix/PATH`` or ``/ip4|ip6/H/tcp/N`` address.

    Raises:
        ValueError: another kind of address.
        OSError: the dial failed.
    """
    protos = [p.name for p in addr.protocols()]
    if protos == ["unix"]:
        return await anyio.connect_unix(component(addr, "unix"))
    if len(protos) == 2 and protos[0] in ("ip4", "ip6") and protos[1] == "tcp":
        return await anyio.connect_tcp(component(addr, protos[0]), int(component(addr, "tcp")))
    raise ValueError(f"unsupported client address {addr} (use /unix/PATH or /ip4/H/tcp/N)")


def component(addr: Multiaddr, name: str) -> str:
    """The value of ``addr``'s ``name`` component.

    Raises:
        ValueError: ``addr`` has no such component.
    """
    value = addr.value_for_protocol(name)
    if value is None:
        raise ValueError(f"{addr} has no /{name} component")
    return str(value)


class StreamHandlers:
    """The protocols a client asked to serve, each with the address to forward streams to."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self._targets: dict[str, Multiaddr] = {}

    @property
    def protocols(self) -> dict[str, Multiaddr]:
        """Registered protocol → client address."""
        return dict(self._targets)

    def register(self, addr: Multiaddr, protocols: Sequence[str]) -> None:
        """Forward inbound streams of ``protocols`` to ``addr`` (replacing an earlier client's
        registration of the same protocol).

        Raises:
            ControlError: the address is not one the daemon can dial, a protocol is one the
                node itself serves (identify, ping, the DHT...), or ``MAX_HANDLERS`` would be
                exceeded.
        """
        kinds = [p.name for p in addr.protocols()]
        if kinds != ["unix"] and not (len(kinds) == 2 and kinds[1] == "tcp"):
            raise w.ControlError(f"unsupported handler address {addr}")
        for proto in protocols:
            if proto in self._host.protocols and proto not in self._targets:
                raise w.ControlError(f"protocol {proto} is served by the node itself")
        new = set(protocols) - set(self._targets)
        if len(self._targets) + len(new) > MAX_HANDLERS:
            raise w.ControlError(f"more than {MAX_HANDLERS} protocols registered")
        for proto in protocols:
            self._targets[proto] = addr
            # As p2pd: a client's protocols are served on relayed (limited) connections too;
            # what runs over them is the client's choice, as STREAM_OPEN's is.
            self._host.set_stream_handler(proto, self._forward, replace=True, allow_limited=True)

    async def _forward(self, stream: Stream) -> None:
        target = self._targets.get(stream.protocol)
        if target is None:
            await stream.reset()
            return
        client = None
        try:
            with anyio.fail_after(HANDLER_DIAL_TIMEOUT):
                client = await connect_control_addr(target)
                await client.send(w.encode(stream_info(stream)))
        except _DIAL_FAILED:
            await stream.reset()
            if client is not None:
                await client.aclose()
            return
        widen_buffers(client)
        await pipe(client, stream)
