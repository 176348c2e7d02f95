"""Conformance checks for an ``UpgradedTransport``: a transport that delivers secured,
multiplexed connections (QUIC, a relay, the memory reference ``UpgradedMemoryTransport``).

Run ``await check_upgraded_transport(dialer, dialer_upgrader, listener, listener_upgrader,
addr)`` in a test, with two transport instances (one per side, as two hosts would have) and
the upgraders their hosts would pass (transports that upgrade by themselves ignore them). It
raises ``AssertionError`` saying what is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
from anyio.abc import TaskGroup
from multiaddr import Multiaddr

from p2pstack.errors import NETWORK_ERRORS, P2PError, SecurityError
from p2pstack.identity import Identity
from p2pstack.interfaces import (
    MuxedConnection,
    UpgradedConnection,
    UpgradedListener,
    UpgradedTransport,
    Upgrader,
)

__all__ = ["check_upgraded_transport"]

#: Seconds any one step may take before the check fails.
STEP_TIMEOUT = 20.0
#: Bytes sent each way on a stream, checked on arrival.
PAYLOAD_SIZE = 256 * 1024


def _require(condition: bool, message: str) -> None:
    # Not `assert`: the checks must still run under `python -O`.
    if not condition:
        raise AssertionError(message)


@contextmanager
def _step(what: str) -> Iterator[None]:
    try:
        with anyio.fail_after(STEP_TIMEOUT):
            yield
    except TimeoutError:
        raise AssertionError(f"{what}: did not finish within {STEP_TIMEOUT} s") from None


async def check_upgraded_transport(
    dialer: UpgradedTransport,
    dialer_upgrader: Upgrader,
    listener: UpgradedTransport,
    listener_upgrader: Upgrader,
    listen_addr: Multiaddr,
) -> None:
    """Check that an ``UpgradedTransport`` keeps its contract.

    Checks: ``delivers_upgraded``; reported listen addresses are dialable; a dial and the
    matching accept describe one connection from both ends (direction, peers proved by their
    keys, same security, muxer and ``limited``); streams opened from either end carry data
    both ways with half-close; closing one end ends the other's ``run()``; a dial expecting
    another peer fails with ``SecurityError``; ``aclose`` wakes a pending ``accept`` and is
    idempotent; a dial to the closed listener fails with a ``P2PError`` in bounded time.

    Args:
        dialer: the transport instance of the dialing side.
        dialer_upgrader: the upgrader the dialing side's host would pass.
        listener: the transport instance of the listening side.
        listener_upgrader: the upgrader the listening side's host would pass.
        listen_addr: an address ``listener`` can listen on (port 0 / id 0 for a free one).

    Raises:
        AssertionError: a contract is broken; the message says which.
    """
    _require(dialer.delivers_upgraded is True, "delivers_upgraded is not True")
    _require(listener.can_listen(listen_addr), f"can_listen({listen_addr}) is False")
    with _step(f"listen on {listen_addr}"):
        bound = await listener.listen(listen_addr, upgrader=listener_upgrader)
    try:
        _require(bool(bound.multiaddrs), "the listener reports no address")
        addr = bound.multiaddrs[0]
        _require(dialer.can_dial(addr), f"can_dial({addr}) is False for a reported address")
        await _check_connection(dialer, dialer_upgrader, bound, addr)
        await _check_wrong_peer(dialer, dialer_upgrader, bound, addr)
        await _check_accept_wakes(bound)
    finally:
        await bound.aclose()
    with _step("dial to a closed listener"):
        try:
            extra = await dialer.dial(addr, remote_peer=None, upgrader=dialer_upgrader)
        except P2PError:
            return
        await extra.muxed.aclose()
        raise AssertionError("a dial to a closed listener succeeded")


async def _connect(
    dialer: UpgradedTransport, upgrader: Upgrader, bound: UpgradedListener, addr: Multiaddr
) -> tuple[UpgradedConnection, UpgradedConnection]:
    accepted: list[UpgradedConnection] = []

    async def accept() -> None:
        accepted.append(await bound.accept())

    with _step(f"dial {addr} and accept"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(accept)
            client = await dialer.dial(addr, remote_peer=None, upgrader=upgrader)
    return client, accepted[0]


def _check_infos(client: UpgradedConnection, server: UpgradedConnection) -> None:
    a, b = client.info, server.info
    _require(a.direction == "outbound", f"dialer's direction is {a.direction!r}")
    _require(b.direction == "inbound", f"listener's direction is {b.direction!r}")
    _require(a.remote_peer.matches(a.remote_public_key), "dialer: remote key is not the peer's")
    _require(b.remote_peer.matches(b.remote_public_key), "listener: remote key is not the peer's")
    _require(a.remote_peer != b.remote_peer, "both ends report the same remote peer")
    _require(a.security == b.security, f"security differs: {a.security} / {b.security}")
    _require(a.muxer == b.muxer, f"muxer differs: {a.muxer} / {b.muxer}")
    _require(a.limited == b.limited, "the ends disagree on limited")
    _require(bool(a.transport), "info.transport is empty")


async def _check_connection(
    dialer: UpgradedTransport, upgrader: Upgrader, bound: UpgradedListener, addr: Multiaddr
) -> None:
    client, server = await _connect(dialer, upgrader, bound, addr)
    _check_infos(client, server)
    server_ended = anyio.Event()

    async def run_server() -> None:
        await server.muxed.run()
        server_ended.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(client.muxed.run)
        tg.start_soon(run_server)
        try:
            await _check_stream(client.muxed, server.muxed, "dialer")
            await _check_stream(server.muxed, client.muxed, "listener")
            with _step("closing one end ends the other's run()"):
                await client.muxed.aclose()
                await server_ended.wait()
        finally:
            await _close_all(tg, client.muxed, server.muxed)


async def _close_all(tg: TaskGroup, *conns: MuxedConnection) -> None:
    with anyio.CancelScope(shield=True):
        for conn in conns:
            await conn.aclose()
    tg.cancel_scope.cancel()


async def _check_stream(opener: MuxedConnection, acceptor: MuxedConnection, who: str) -> None:
    payload = os.urandom(PAYLOAD_SIZE)
    with _step(f"a stream opened by the {who} carries data both ways"):
        out = await opener.open_stream()
        async with anyio.create_task_group() as tg:

            async def send_all() -> None:
                for i in range(0, len(payload), 16384):
                    await out.send(payload[i : i + 16384])
                await out.send_eof()

            # Sending first: a QUIC stream reaches the peer with its first data, not before.
            tg.start_soon(send_all)
            inc = await acceptor.accept_stream()
            received = bytearray()
            while True:
                try:
                    received += await inc.receive()
                except anyio.EndOfStream:
                    break
        _require(bytes(received) == payload, f"{who}'s stream delivered other bytes")
        await inc.send(b"reply")
        await inc.send_eof()
        _require(await out.receive() == b"reply", "the reply after half-close was lost")
        await out.aclose()
        await inc.aclose()


async def _check_wrong_peer(
    dialer: UpgradedTransport, upgrader: Upgrader, bound: UpgradedListener, addr: Multiaddr
) -> None:
    wrong = Identity.generate().peer_id
    with _step("a dial expecting another peer fails"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_drain_one, bound)
            try:
                conn = await dialer.dial(addr, remote_peer=wrong, upgrader=upgrader)
            except SecurityError:
                tg.cancel_scope.cancel()
                return
            await conn.muxed.aclose()
            raise AssertionError("a dial expecting another peer ID succeeded")


async def _drain_one(bound: UpgradedListener) -> None:
    # The listener's side of the failed dial: its upgrade fails and is skipped (or, if the
    # listener finished first, the connection is closed at once).
    try:
        conn = await bound.accept()
    except NETWORK_ERRORS:
        return
    await conn.muxed.aclose()


async def _check_accept_wakes(bound: UpgradedListener) -> None:
    with _step("aclose wakes a pending accept"):
        async with anyio.create_task_group() as tg:
            woke: list[BaseException] = []

            async def accept() -> None:
                try:
                    await bound.accept()
                except anyio.ClosedResourceError as exc:
                    woke.append(exc)

            tg.start_soon(accept)
            await anyio.wait_all_tasks_blocked()
            await bound.aclose()
        _require(len(woke) == 1, "aclose did not wake a pending accept")
        await bound.aclose()  # idempotent
