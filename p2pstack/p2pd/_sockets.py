"""Control-socket addresses: ``/unix/PATH``, ``/ip4/A/tcp/N`` and ``/ip6/A/tcp/N`` as p2pd
accepts them, dialed and listened on with anyio."""

from __future__ import annotations

import contextlib
import socket

import anyio
import anyio.abc
from multiaddr import Multiaddr

from p2pstack.multiaddrs import parse_multiaddr

__all__ = ["connect_control", "listen_control", "split_control_addr", "widen_buffers"]


def split_control_addr(addr: Multiaddr | str) -> tuple[str, str, int]:
    """``("unix", path, 0)`` or ``("tcp", host, port)`` for a control or listen address.

    Raises:
        ValueError: not a ``/unix/PATH`` or ``/ip4|ip6/HOST/tcp/PORT`` address.
    """
    ma = parse_multiaddr(addr)
    names = [p.name for p in ma.protocols()]
    if names == ["unix"]:
        return "unix", str(ma.value_for_protocol("unix")), 0
    if len(names) == 2 and names[0] in ("ip4", "ip6") and names[1] == "tcp":
        host = str(ma.value_for_protocol(names[0]))
        return "tcp", host, int(str(ma.value_for_protocol("tcp")))
    raise ValueError(f"unsupported control address {ma} (use /unix/PATH or /ip4/A/tcp/N)")


#: Kernel socket buffer asked for on a unix control connection that carries a stream.
SOCKET_BUFFER = 4 * 1024 * 1024


def widen_buffers(conn: anyio.abc.ByteStream) -> None:
    """Ask for ``SOCKET_BUFFER``-byte kernel buffers on ``conn`` if it is a unix socket (an
    anyio socket stream) that will carry a stream's bytes: with the default (about 200 KiB) the
    writer and the reader wait on each other's wake-ups chunk after chunk. The kernel caps it at
    ``net.core.wmem_max`` / ``rmem_max``; TCP sockets are left to their own auto-tuning."""
    sock = conn.extra(anyio.abc.SocketAttribute.raw_socket, None)
    if not isinstance(sock, socket.socket) or sock.family != socket.AF_UNIX:
        return
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        with contextlib.suppress(OSError):  # a smaller buffer only costs throughput
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)


async def connect_control(addr: Multiaddr | str) -> anyio.abc.SocketStream:
    """A new connection to the daemon's control socket (the caller bounds it in time).

    Raises:
        ValueError: unsupported address.
        OSError: the daemon cannot be reached.
    """
    kind, host, port = split_control_addr(addr)
    if kind == "unix":
        return await anyio.connect_unix(host)
    return await anyio.connect_tcp(host, port)


async def listen_control(
    addr: Multiaddr | str,
) -> tuple[anyio.abc.SocketListener, Multiaddr]:
    """Listen where the daemon will dial us; returns the listener and its real address (the
    port chosen for ``/tcp/0``). A unix socket path left behind by an earlier run is removed.

    Raises:
        ValueError: unsupported address.
        OSError: cannot listen there.
    """
    kind, host, port = split_control_addr(addr)
    if kind == "unix":
        await anyio.Path(host).unlink(missing_ok=True)
        return await anyio.create_unix_listener(host), Multiaddr(f"/unix{host}")
    multi = await anyio.create_tcp_listener(local_host=host, local_port=port)
    sock = multi.listeners[0]
    assert isinstance(sock, anyio.abc.SocketListener)  # one host: one socket listener
    real = sock.extra(anyio.abc.SocketAttribute.local_port)
    family = "ip6" if ":" in host else "ip4"
    return sock, Multiaddr(f"/{family}/{host}/tcp/{real}")
