"""Hole-punch coordination of the ``nat_traversal`` workload: the DCUtR sans-IO cores of
``protocols.dcutr`` (https://github.com/libp2p/specs/blob/master/relay/DCUtR.md) driven over
the simulated relayed path, on the virtual clock.

B (the peer that accepted the relayed connection) runs ``InitiatorCore``: CONNECT with its
observed address, the round-trip time to A's CONNECT, SYNC, the dial after RTT / 2, another
round after a failed dial until the core's attempt limit. A runs ``ResponderCore``: it answers
CONNECT and dials when SYNC arrives. The cores' bytes (length-prefixed ``HolePunch`` protobufs)
are what travels over the ``RelayedChannel``; their deadlines (response timeout, SYNC timer,
idle timeout) are waited for with the simulator's clock. The dials are the scenario's
(``_nat_punch``: TCP simultaneous open from the listen port, QUIC with punch packets).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import anyio
from multiaddr import Multiaddr

from protocols.dcutr import (
    AddressPolicy,
    DcutrEvent,
    DialRequested,
    InitiatorCore,
    ResponderCore,
    UpgradeFailed,
)

__all__ = ["DirectDial", "RelayedChannel", "initiate", "quic_addr", "respond", "udp_addrs"]

#: Dials the peer's addresses directly (both sides at once for TCP); True once a direct
#: connection exists, False after the attempt's timeout.
DirectDial = Callable[[Sequence[str]], Awaitable[bool]]

#: The simulated network's public addresses (11.0.0.0/8) are global: the default policy, which
#: dials only global unicast addresses, applies unchanged.
_POLICY = AddressPolicy()


_QUIC = "/quic-v1"


def quic_addr(udp: str | None) -> str | None:
    """The QUIC address DCUtR announces for an observed UDP mapping (``.../udp/P/quic-v1``):
    the address policy dials TCP and QUIC-v1 addresses only."""
    return None if udp is None else udp + _QUIC


def udp_addrs(addrs: Sequence[str]) -> list[str]:
    """The UDP destinations of QUIC addresses (the simulated sockets send plain datagrams)."""
    return [a.removesuffix(_QUIC) for a in addrs]


class RelayedChannel(Protocol):
    """The relayed path between the two peers (chunks of bytes, in order, with the relay's
    latency)."""

    async def send(self, data: bytes) -> None:
        """Send bytes; raises ``anyio.BrokenResourceError`` if the path is gone."""
        ...

    async def receive(self) -> bytes:
        """The next chunk (waits; callers bound the wait)."""
        ...


async def _pump(channel: RelayedChannel, core: InitiatorCore | ResponderCore) -> DcutrEvent | None:
    """Send what the core has to send, then wait for input until its next deadline (feeding
    the core, or firing its timer); the next event, or ``None`` once the core has no deadline
    and nothing to say."""
    while True:
        out = core.data_to_send()
        if out:
            await channel.send(out)
        event = core.next_event()
        if event is not None:
            return event
        deadline = core.next_deadline()
        if deadline is None:
            return None
        data = b""
        with anyio.move_on_after(max(deadline - anyio.current_time(), 0.0)):
            data = await channel.receive()
        if data:
            core.receive_data(data, anyio.current_time())
        else:
            core.handle_timer(anyio.current_time())


def _strs(event: DialRequested) -> list[str]:
    return [str(addr) for addr in event.addrs]


async def initiate(
    channel: RelayedChannel,
    own_addrs: Sequence[str],
    dial: DirectDial,
    *,
    attempts: int,
    timeout: float,
) -> int:
    """Run B's side.

    Returns:
        The attempt (1-based) that gave a direct connection, 0 if none did (every attempt
        failed, A did not answer within ``timeout``, or A announced no dialable address).

    Raises:
        p2pstack.errors.RemoteProtocolError: A sent something DCUtR does not allow.
    """
    own = tuple(Multiaddr(a) for a in own_addrs)
    core = InitiatorCore(policy=_POLICY, max_attempts=attempts, response_timeout=timeout)
    core.start_attempt(anyio.current_time(), own)
    while True:
        event = await _pump(channel, core)
        if not isinstance(event, DialRequested):
            return 0  # UpgradeFailed, or finished
        if await dial(_strs(event)):
            core.succeeded()
            return event.attempt
        core.attempt_failed(anyio.current_time(), own)


async def respond(
    channel: RelayedChannel,
    own_addrs: Sequence[str],
    dial: DirectDial,
    *,
    attempts: int,
    timeout: float,
) -> int:
    """Run A's side: answer each CONNECT, dial on each SYNC, until a dial works, ``attempts``
    rounds failed, or B stays silent for ``timeout``.

    Returns:
        The attempt that gave a direct connection, 0 if none did.

    Raises:
        p2pstack.errors.RemoteProtocolError: B sent something DCUtR does not allow (a round
            past ``attempts`` among them).
    """
    own = tuple(Multiaddr(a) for a in own_addrs)
    core = ResponderCore(
        own,
        policy=_POLICY,
        max_attempts=attempts,
        idle_timeout=timeout,
        now=anyio.current_time(),
    )
    while True:
        event = await _pump(channel, core)
        if event is None or isinstance(event, UpgradeFailed) or core.done:
            return 0
        if await dial(_strs(event)):
            return event.attempt
        if event.attempt >= attempts:
            return 0
