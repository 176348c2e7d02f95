"""``widen_buffers``: a unix control connection that carries a stream gets large kernel buffers;
a TCP one keeps its auto-tuning (its buffers are left alone)."""

from __future__ import annotations

import socket
from pathlib import Path

import anyio
import anyio.abc
import pytest

from p2pstack.p2pd import widen_buffers

pytestmark = pytest.mark.anyio


def _sizes(conn: anyio.abc.SocketStream) -> tuple[int, int]:
    sock = conn.extra(anyio.abc.SocketAttribute.raw_socket)
    return (
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
    )


async def test_unix_buffers_grow(tmp_path: Path) -> None:
    path = str(tmp_path / "c.sock")
    async with await anyio.create_unix_listener(path), await anyio.connect_unix(path) as conn:
        before = _sizes(conn)
        widen_buffers(conn)
        after = _sizes(conn)
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)


async def test_tcp_buffers_left_alone() -> None:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with await anyio.connect_tcp("127.0.0.1", port) as conn:
            before = _sizes(conn)
            widen_buffers(conn)
            assert _sizes(conn) == before
