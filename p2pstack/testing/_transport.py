"""Conformance checks any ``Transport`` implementation must pass (the ``Transport``,
``Listener`` and ``ByteStream`` contracts of ``p2pstack.interfaces``; connection model in
https://github.com/libp2p/specs/tree/master/connections).

Run ``await check_transport(MyTransport(), Multiaddr("/ip4/127.0.0.1/tcp/0"))`` in a test; it
raises ``AssertionError`` saying what is wrong.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
from multiaddr import Multiaddr

from p2pstack.errors import TransportError
from p2pstack.interfaces import Listener, RawConnection, Transport

__all__ = ["check_transport"]

#: Bytes sent each way in the bulk check, hash-checked on arrival.
BULK_SIZE = 4 * 1024 * 1024
#: Seconds any one step may take before the check fails.
STEP_TIMEOUT = 20.0
_PORT_PROTOCOLS = frozenset(("tcp", "udp", "memory", "sctp", "dccp"))
_UNSPECIFIED_HOSTS = frozenset(("0.0.0.0", "::"))


def _require(condition: bool, message: str) -> None:
    # Not `assert`: the checks must still run under `python -O`.
    if not condition:
        raise AssertionError(message)


@contextmanager
def _step(what: str, seconds: float = STEP_TIMEOUT) -> Iterator[None]:
    try:
        with anyio.fail_after(seconds):
            yield
    except TimeoutError:
        raise AssertionError(f"{what}: did not finish within {seconds} s") from None


async def check_transport(transport: Transport, listen_addr: Multiaddr) -> None:
    """Check that ``transport`` keeps the ``Transport``/``Listener``/``RawConnection`` contracts.

    Listens on ``listen_addr``, dials the reported address, and checks: reported addresses
    (no port 0, dialable), connection addresses on both ends, data both ways, a 4 MiB transfer
    each way at once (hash-checked), ``receive`` never returning ``b""`` nor more than
    ``max_bytes``, half-close, the peer seeing our close, ``Listener.aclose`` waking a pending
    ``accept`` and being idempotent, and a dial to the closed listener failing with
    ``TransportError`` in bounded time.

    Args:
        transport: the transport under test.
        listen_addr: an address it can listen on (port 0 / id 0 for a free one).

    Raises:
        AssertionError: a contract is broken; the message says which.
    """
    _require(transport.can_listen(listen_addr), f"can_listen({listen_addr}) is False")
    with _step(f"listen on {listen_addr}"):
        listener = await transport.listen(listen_addr)
    try:
        addr = _check_listener_addrs(transport, listener)
        client, server = await _connect(transport, listener, addr)
        try:
            _check_connection_addrs(client, server, addr)
            await _check_small_exchange(client, server)
            await _check_bulk(client, server)
            await _check_half_close(client, server)
        finally:
            await client.aclose()
            await server.aclose()
        await _check_peer_close(transport, listener, addr)
        await _check_accept_wakes(listener)
    finally:
        await listener.aclose()
    with _step("second Listener.aclose() (must be idempotent)"):
        await listener.aclose()
    await _check_dial_closed(transport, addr)


def _check_listener_addrs(transport: Transport, listener: Listener) -> Multiaddr:
    addrs = list(listener.multiaddrs)
    _require(bool(addrs), "Listener.multiaddrs is empty")
    for addr in addrs:
        for proto, value in addr.items():
            _require(
                not (proto.name in _PORT_PROTOCOLS and value == "0"),
                f"Listener.multiaddrs reports {addr}: {proto.name} 0 must be replaced by the "
                "port/id actually bound",
            )
        _require(transport.can_dial(addr), f"can_dial({addr}) is False for its own listener")
    return addrs[0]


async def _connect(
    transport: Transport, listener: Listener, addr: Multiaddr
) -> tuple[RawConnection, RawConnection]:
    accepted: list[RawConnection] = []

    async def accept() -> None:
        accepted.append(await listener.accept())

    with _step(f"dial {addr} and accept"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(accept)
            client = await transport.dial(addr)
    return client, accepted[0]


def _check_connection_addrs(client: RawConnection, server: RawConnection, addr: Multiaddr) -> None:
    _require(
        server.local_multiaddr == client.remote_multiaddr,
        f"accepted local_multiaddr {server.local_multiaddr} != dialer's remote_multiaddr "
        f"{client.remote_multiaddr}",
    )
    _require(
        server.remote_multiaddr == client.local_multiaddr,
        f"accepted remote_multiaddr {server.remote_multiaddr} != dialer's local_multiaddr "
        f"{client.local_multiaddr}",
    )
    if not any(value in _UNSPECIFIED_HOSTS for _, value in addr.items()):
        _require(
            client.remote_multiaddr == addr,
            f"dialer's remote_multiaddr {client.remote_multiaddr} != dialed address {addr}",
        )


async def _receive_exactly(conn: RawConnection, size: int, max_bytes: int = 65536) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = await conn.receive(max_bytes)
        _check_chunk(chunk, max_bytes)
        buf += chunk
    _require(len(buf) == size, f"received {len(buf)} bytes where {size} were sent")
    return bytes(buf)


def _check_chunk(chunk: bytes, max_bytes: int) -> None:
    _require(chunk != b"", "receive() returned b'' (it must raise EndOfStream instead)")
    _require(len(chunk) <= max_bytes, f"receive({max_bytes}) returned {len(chunk)} bytes")


async def _check_small_exchange(client: RawConnection, server: RawConnection) -> None:
    with _step("small exchange"):
        await client.send(b"hello from dialer")
        got = await _receive_exactly(server, 17)
        _require(got == b"hello from dialer", f"listener side received {got!r}")
        await server.send(b"hello from listener")
        got = await _receive_exactly(client, 19)
        _require(got == b"hello from listener", f"dialer side received {got!r}")
        await client.send(b"xyz")
        one = await server.receive(1)
        _require(one == b"x", f"receive(1) returned {one!r}, expected b'x'")
        rest = await _receive_exactly(server, 2)
        _require(rest == b"yz", f"bytes after receive(1) were {rest!r}, expected b'yz'")


async def _check_bulk(client: RawConnection, server: RawConnection) -> None:
    # Seeded: a failure reproduces with the same bytes.
    up = random.Random(1).randbytes(BULK_SIZE)
    down = random.Random(2).randbytes(BULK_SIZE)
    digests: dict[str, str] = {}

    async def send(conn: RawConnection, data: bytes) -> None:
        # Uneven pieces, so transports cannot rely on aligned writes.
        view = memoryview(data)
        pos, size = 0, 1
        while pos < len(data):
            await conn.send(bytes(view[pos : pos + size]))
            pos += size
            size = size * 7 % 300_007 + 1

    async def receive(name: str, conn: RawConnection) -> None:
        digests[name] = hashlib.sha256(await _receive_exactly(conn, BULK_SIZE)).hexdigest()

    with _step(f"transfer {BULK_SIZE} bytes each way at once", STEP_TIMEOUT * 3):
        async with anyio.create_task_group() as tg:
            tg.start_soon(send, client, up)
            tg.start_soon(send, server, down)
            tg.start_soon(receive, "up", server)
            tg.start_soon(receive, "down", client)
    _require(digests["up"] == hashlib.sha256(up).hexdigest(), "dialer→listener bulk data corrupted")
    _require(
        digests["down"] == hashlib.sha256(down).hexdigest(), "listener→dialer bulk data corrupted"
    )


async def _expect_eof(conn: RawConnection, what: str) -> None:
    try:
        chunk = await conn.receive()
    except anyio.EndOfStream:
        return
    raise AssertionError(f"{what}: expected EndOfStream, received {chunk!r}")


async def _check_half_close(client: RawConnection, server: RawConnection) -> None:
    with _step("half-close"):
        await client.send(b"last")
        await client.send_eof()
        got = await _receive_exactly(server, 4)
        _require(got == b"last", f"data sent before send_eof arrived as {got!r}")
        await _expect_eof(server, "listener side after the dialer's send_eof")
        try:
            await client.send(b"late")
        except anyio.ClosedResourceError:
            pass
        else:
            raise AssertionError("send() after send_eof() did not raise ClosedResourceError")
        await server.send(b"still open")
        got = await _receive_exactly(client, 10)
        _require(got == b"still open", f"the other direction after send_eof carried {got!r}")
        await server.send_eof()
        await _expect_eof(client, "dialer side after both sides sent EOF")


async def _check_peer_close(transport: Transport, listener: Listener, addr: Multiaddr) -> None:
    client, server = await _connect(transport, listener, addr)
    try:
        with _step("peer sees aclose()"):
            await client.send(b"bye")
            got = await _receive_exactly(server, 3)
            _require(got == b"bye", f"received {got!r} before close")
            await client.aclose()
            try:
                chunk = await server.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
            else:
                raise AssertionError(f"after the peer's aclose(), receive() returned {chunk!r}")
    finally:
        await client.aclose()
        await server.aclose()


async def _check_accept_wakes(listener: Listener) -> None:
    outcome: list[BaseException | None] = []

    async def accept() -> None:
        try:
            conn = await listener.accept()
        except Exception as exc:  # recorded and judged below
            outcome.append(exc)
        else:
            outcome.append(None)
            await conn.aclose()

    with _step("Listener.aclose() waking a pending accept()"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(accept)
            # Let accept() block first when possible; bounded in case other tasks never idle.
            with anyio.move_on_after(1.0):
                await anyio.wait_all_tasks_blocked()
            await listener.aclose()
    _require(
        len(outcome) == 1 and isinstance(outcome[0], anyio.ClosedResourceError),
        f"pending accept() after aclose() ended with {outcome!r}, expected ClosedResourceError",
    )
    try:
        with _step("accept() on a closed listener"):
            await listener.accept()
    except anyio.ClosedResourceError:
        return
    raise AssertionError("accept() on a closed listener did not raise ClosedResourceError")


async def _check_dial_closed(transport: Transport, addr: Multiaddr) -> None:
    try:
        with _step(f"dial {addr} after its listener closed"):
            conn = await transport.dial(addr)
    except TransportError:
        return
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(
            f"dial to a closed listener raised {type(exc).__name__}: {exc}; expected TransportError"
        ) from exc
    await conn.aclose()
    raise AssertionError(f"dial to the closed listener {addr} succeeded")
