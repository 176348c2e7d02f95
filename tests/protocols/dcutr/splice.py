"""A stand-in for a circuit relay in the NAT tests: a "public" node that pairs a waiting
listener with a dialer and copies bytes between their TCP connections, and tells each one the
address it observed (TCP from the control connection, UDP from a probe datagram), like identify's
observed address. The libp2p connection runs over the spliced bytes and is marked limited.

Control lines (client -> splicer): ``L <name> <token>`` (wait for a dialer of ``name``) or
``D <name> <token>``; the splicer answers ``OBS <ip> <tcp port> <udp port>`` (udp port 0 if no
probe datagram with ``token`` arrived within 2 s), then ``GO`` to both once paired.

``python -m tests.protocols.dcutr.splice IP PORT`` runs the splicer (TCP and UDP on PORT).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

import anyio
import attrs
from anyio.abc import SocketStream, UDPSocket
from multiaddr import Multiaddr

from p2pstack.errors import TransportError
from p2pstack.identity import PeerId
from p2pstack.interfaces import RawConnection, UpgradedConnection, Upgrader

#: Seconds to wait for a probe datagram, and for the partner.
PROBE_WAIT = 2.0


class Splicer:
    def __init__(self) -> None:
        self.probes: dict[str, int] = {}
        self.waiting: dict[str, tuple[SocketStream, anyio.Event, list[SocketStream]]] = {}
        self._signals: dict[str, anyio.Event] = {}

    def _signal(self, key: str) -> anyio.Event:
        return self._signals.setdefault(key, anyio.Event())

    async def serve_udp(self, sock: UDPSocket) -> None:
        async for data, addr in sock:
            token = data.decode(errors="replace")[:64]
            self.probes[token] = int(addr[1])
            self._signal(f"probe {token}").set()

    async def handle(self, stream: SocketStream) -> None:
        async with stream:
            line = await _readline(stream)
            kind, name, token = line.split()
            remote = stream.extra(anyio.abc.SocketAttribute.remote_address)
            assert isinstance(remote, tuple)
            ip, tcp_port = remote[0], remote[1]
            with anyio.move_on_after(PROBE_WAIT):
                await self._signal(f"probe {token}").wait()
            udp_port = self.probes.get(token, 0)
            await stream.send(f"OBS {ip} {tcp_port} {udp_port}\n".encode())
            if kind == "L":
                paired = anyio.Event()
                partner: list[SocketStream] = []
                self.waiting[name] = (stream, paired, partner)
                self._signal(f"listener {name}").set()
                await paired.wait()
                await _pump_both(stream, partner[0])
            else:
                with anyio.fail_after(30):
                    await self._signal(f"listener {name}").wait()
                listener, paired, partner = self.waiting.pop(name)
                await listener.send(b"GO\n")
                await stream.send(b"GO\n")
                partner.append(stream)
                paired.set()
                await anyio.sleep_forever()  # the listener's task copies both ways


async def _pump_both(a: SocketStream, b: SocketStream) -> None:
    async def copy(src: SocketStream, dst: SocketStream) -> None:
        try:
            async for chunk in src:
                await dst.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            await dst.aclose()
        tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(copy, a, b)
        tg.start_soon(copy, b, a)


async def _readline(stream: SocketStream) -> str:
    buf = b""
    while not buf.endswith(b"\n"):
        buf += await stream.receive(1)
        if len(buf) > 200:
            raise ValueError("control line too long")
    return buf.decode().strip()


async def run_splicer(ip: str, port: int) -> None:
    splicer = Splicer()
    listener = await anyio.create_tcp_listener(local_host=ip, local_port=port)
    udp = await anyio.create_udp_socket(local_host=ip, local_port=port)
    print("ready", flush=True)
    async with anyio.create_task_group() as tg:
        tg.start_soon(splicer.serve_udp, udp)
        await listener.serve(splicer.handle)


# -- the client side: an UpgradedTransport for the nodes ----------------------------------------


@attrs.define
class Observed:
    """What the splicer saw of us: the public IP, TCP and UDP ports."""

    ip: str = ""
    tcp_port: int = 0
    udp_port: int = 0


def _is_splice(addr: Multiaddr) -> bool:
    return str(addr).rstrip("/").endswith("/p2p-circuit") or "/p2p-circuit/" in str(addr)


def _target(addr: Multiaddr) -> tuple[str, int]:
    parts = str(addr).split("/")
    return parts[2], int(parts[4])


class SpliceTransport:
    """Dials / listens through the splicer; every connection is ``limited``.

    Args:
        name: the listener name to meet at.
        bind: the TCP (ip, port) to connect from (our listen port, so the splicer observes it).
        udp_probe: sends the probe datagram from our QUIC socket.
    """

    delivers_upgraded: Literal[True] = True

    def __init__(
        self,
        name: str,
        bind: tuple[str, int],
        udp_probe: Callable[[Multiaddr, bytes], Awaitable[bool]],
    ) -> None:
        self.name = name
        self.bind = bind
        self.udp_probe = udp_probe
        self.observed = Observed()
        self.met = anyio.Event()

    def can_dial(self, addr: Multiaddr) -> bool:
        return _is_splice(addr)

    def can_listen(self, addr: Multiaddr) -> bool:
        return _is_splice(addr)

    async def _meet(self, kind: str, addr: Multiaddr) -> SocketStream:
        host, port = _target(addr)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(self.bind)
        sock.setblocking(False)
        try:
            sock.connect((host, port))
        except BlockingIOError:
            pass
        await anyio.wait_writable(sock)
        stream = await SocketStream.from_socket(sock)
        token = f"{self.name}-{kind}-{id(stream)}"
        await stream.send(f"{kind} {self.name} {token}\n".encode())
        for _ in range(3):
            await self.udp_probe(Multiaddr(f"/ip4/{host}/udp/{port}/quic-v1"), token.encode())
        obs = (await _readline(stream)).split()
        self.observed = Observed(obs[1], int(obs[2]), int(obs[3]))
        self.met.set()
        return stream

    async def dial(
        self, addr: Multiaddr, *, remote_peer: PeerId | None, upgrader: Upgrader
    ) -> UpgradedConnection:
        stream = await self._meet("D", addr)
        if await _readline(stream) != "GO":
            raise TransportError("splicer refused")
        upgraded = await upgrader.upgrade_outbound(_raw(stream), remote_peer=remote_peer)
        return attrs.evolve(upgraded, info=attrs.evolve(upgraded.info, limited=True))

    async def listen(self, addr: Multiaddr, *, upgrader: Upgrader) -> SpliceListener:
        return SpliceListener(self, addr, upgrader)


class SpliceListener:
    def __init__(self, transport: SpliceTransport, addr: Multiaddr, upgrader: Upgrader) -> None:
        self._transport = transport
        self._addr = addr
        self._upgrader = upgrader
        self.registered = anyio.Event()

    @property
    def multiaddrs(self) -> Sequence[Multiaddr]:
        return [self._addr]

    async def accept(self) -> UpgradedConnection:
        stream = await self._transport._meet("L", self._addr)
        self.registered.set()
        if await _readline(stream) != "GO":
            raise TransportError("splicer refused")
        upgraded = await self._upgrader.upgrade_inbound(_raw(stream))
        return attrs.evolve(upgraded, info=attrs.evolve(upgraded.info, limited=True))

    async def aclose(self) -> None:
        pass


class _Raw:
    """A ``RawConnection`` over the spliced socket stream."""

    def __init__(self, stream: SocketStream) -> None:
        self._stream = stream
        local = stream.extra(anyio.abc.SocketAttribute.local_address)
        remote = stream.extra(anyio.abc.SocketAttribute.remote_address)
        self._local = Multiaddr(f"/ip4/{local[0]}/tcp/{local[1]}/p2p-circuit")
        self._remote = Multiaddr(f"/ip4/{remote[0]}/tcp/{remote[1]}/p2p-circuit")

    @property
    def local_multiaddr(self) -> Multiaddr:
        return self._local

    @property
    def remote_multiaddr(self) -> Multiaddr:
        return self._remote

    async def send(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send(bytes(data))

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._stream.receive(max_bytes)

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


def _raw(stream: SocketStream) -> RawConnection:
    return _Raw(stream)


if __name__ == "__main__":
    anyio.run(run_splicer, sys.argv[1], int(sys.argv[2]))
