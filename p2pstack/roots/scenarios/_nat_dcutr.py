"""Hole-punch coordination of the ``nat_traversal`` workload, after DCUtR
(https://github.com/libp2p/specs/blob/master/relay/DCUtR.md): over the relayed path, B (the
peer that accepted the relayed connection) sends CONNECT with its observed addresses and
starts a timer, A answers CONNECT with its own, B takes the round-trip time, sends SYNC and
dials after half of it while A dials as soon as SYNC arrives; up to ``attempts`` rounds.

The message logic is a sans-IO core (``InitiatorCore``, ``ResponderCore``: bytes and times in,
bytes, addresses and delays out); ``initiate`` and ``respond`` drive it over a
``RelayedChannel`` and call a ``DirectDial``. This is the seam where the real DCUtR core of
``protocols.dcutr`` replaces these two classes (and the channel becomes a stream of a
relayed connection): the runner's side, the relay model and the NAT boxes stay as they are.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import anyio

__all__ = [
    "DirectDial",
    "InitiatorCore",
    "RelayedChannel",
    "ResponderCore",
    "decode",
    "initiate",
    "respond",
]

_CONNECT, _SYNC = b"C", b"S"

#: Dials the peer's addresses directly (both sides at once for TCP); True once a direct
#: connection exists, False after the attempt's timeout.
DirectDial = Callable[[Sequence[str]], Awaitable[bool]]


class RelayedChannel(Protocol):
    """The relayed path between the two peers (messages, in order, with the relay's latency)."""

    async def send(self, data: bytes) -> None:
        """Send one message; raises ``anyio.BrokenResourceError`` if the path is gone."""
        ...

    async def receive(self) -> bytes:
        """The next message (waits; callers bound the wait)."""
        ...


def decode(data: bytes) -> tuple[bytes, tuple[str, ...]]:
    """``(type, addresses)`` of a message.

    Raises:
        ValueError: neither CONNECT nor SYNC.
    """
    kind, body = data[:1], data[1:]
    if kind == _SYNC and not body:
        return kind, ()
    if kind == _CONNECT:
        addrs = tuple(a for a in body.decode("utf-8", "replace").split("\n") if a)
        if addrs:
            return kind, addrs
    raise ValueError("not a CONNECT with addresses or a SYNC")


def _connect(addrs: Sequence[str]) -> bytes:
    return _CONNECT + "\n".join(addrs).encode()


class InitiatorCore:
    """B's side: CONNECT out, CONNECT in (round-trip time), SYNC out, dial after RTT / 2."""

    def __init__(self, own_addrs: Sequence[str]) -> None:
        self.own_addrs = tuple(own_addrs)
        self._sent_at: float | None = None
        self.rtt: float | None = None

    def connect(self, now: float) -> bytes:
        """The CONNECT to send now (starts the round-trip timer)."""
        self._sent_at = now
        return _connect(self.own_addrs)

    def on_connect(self, data: bytes, now: float) -> tuple[bytes, float, tuple[str, ...]]:
        """A's CONNECT arrived.

        Returns:
            The SYNC to send, the delay before dialing (RTT / 2) and A's addresses.

        Raises:
            ValueError: not a CONNECT, or no CONNECT of ours outstanding.
        """
        kind, addrs = decode(data)
        if kind != _CONNECT or self._sent_at is None:
            raise ValueError("expected a CONNECT answer")
        self.rtt = now - self._sent_at
        self._sent_at = None
        return _SYNC, self.rtt / 2, addrs


class ResponderCore:
    """A's side: answer CONNECT with our addresses, dial when SYNC arrives."""

    def __init__(self, own_addrs: Sequence[str]) -> None:
        self.own_addrs = tuple(own_addrs)
        self.peer_addrs: tuple[str, ...] = ()

    def on_message(self, data: bytes) -> bytes | None:
        """A message from B.

        Returns:
            The CONNECT answer to send, or ``None`` for SYNC (dial ``peer_addrs`` now).

        Raises:
            ValueError: malformed, or SYNC before any CONNECT.
        """
        kind, addrs = decode(data)
        if kind == _CONNECT:
            self.peer_addrs = addrs
            return _connect(self.own_addrs)
        if not self.peer_addrs:
            raise ValueError("SYNC before CONNECT")
        return None


async def initiate(
    channel: RelayedChannel,
    core: InitiatorCore,
    dial: DirectDial,
    *,
    attempts: int,
    timeout: float,
) -> int:
    """Run B's side.

    Returns:
        The attempt (1-based) that gave a direct connection, 0 if none did.

    Raises:
        TimeoutError: A did not answer within ``timeout``.
        ValueError: A sent something else than CONNECT.
    """
    for attempt in range(1, attempts + 1):
        await channel.send(core.connect(anyio.current_time()))
        with anyio.fail_after(timeout):
            answer = await channel.receive()
        sync, delay, addrs = core.on_connect(answer, anyio.current_time())
        await channel.send(sync)
        await anyio.sleep(delay)
        if await dial(addrs):
            return attempt
    return 0


async def respond(
    channel: RelayedChannel,
    core: ResponderCore,
    dial: DirectDial,
    *,
    attempts: int,
    timeout: float,
) -> int:
    """Run A's side (mirror of ``initiate``)."""
    for attempt in range(1, attempts + 1):
        with anyio.fail_after(timeout):
            reply = core.on_message(await channel.receive())
            if reply is None:
                raise ValueError("SYNC before CONNECT")
            await channel.send(reply)
            if core.on_message(await channel.receive()) is not None:
                raise ValueError("expected SYNC")
        if await dial(core.peer_addrs):
            return attempt
    return 0
