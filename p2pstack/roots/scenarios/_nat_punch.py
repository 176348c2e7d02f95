"""The direct dials of a hole punch in the ``nat_traversal`` workload, through the NAT boxes
of the simulated network: TCP (both sides dial from their listen port; crossing SYNs make one
connection, a SYN that reaches a listener another) and QUIC (the client sends Initials, the
server sends random UDP packets to open its box, the server's answer completes it), after
DCUtR (https://github.com/libp2p/specs/blob/master/relay/DCUtR.md)."""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence

import anyio
from multiaddr import Multiaddr

from p2pstack.roots.scenarios._workload import NET_ERRORS
from transports.simnet import SimDatagramSocket, SimTransport

__all__ = ["INITIAL", "REPLY", "Punch", "dial_tcp", "pair_key", "quic_client", "udp_punches"]

#: UDP: a QUIC client's Initial and the server's answer (each followed by the pair key), and
#: the server's hole-punching packets (random bytes).
INITIAL, REPLY, RANDOM = b"I", b"H", b"P"
#: QUIC's first probe timeout (RFC 9002: an initial RTT of 333 ms, PTO about 1 s), doubling.
_INITIAL_PTO = 1.0


def pair_key(a: int, b: int) -> bytes:
    """The pair's identifier in UDP packets."""
    return struct.pack(">II", a, b)


class Punch:
    """One pair's hole punch (one transport) as both sides see it: a side sees the direct
    connection as soon as either dial completes."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.direct = anyio.Event()
        self.done_at: float | None = None

    def succeeded(self) -> None:
        if not self.direct.is_set():
            self.done_at = anyio.current_time()
            self.direct.set()

    @property
    def seconds(self) -> float | None:
        """From the relayed connection's start to the direct connection."""
        return None if self.done_at is None else self.done_at - self.started


async def _until_direct(punch: Punch, timeout: float, *jobs: object) -> bool:
    with anyio.move_on_after(timeout):
        async with anyio.create_task_group() as tg:
            for job in jobs:
                tg.start_soon(job)  # type: ignore[arg-type]  # zero-argument coroutines
            await punch.direct.wait()
            tg.cancel_scope.cancel()
    return punch.direct.is_set()


async def dial_tcp(
    transport: SimTransport, addrs: Sequence[str], punch: Punch, timeout: float
) -> bool:
    """Dial ``addrs`` from the listen port (``transport`` reuses it) until either side has a
    direct connection or ``timeout`` passes."""

    async def one(addr: str) -> None:
        try:
            conn = await transport.dial(Multiaddr(addr))
        except NET_ERRORS:
            return
        punch.succeeded()
        await conn.aclose()

    jobs = [lambda addr=addr: one(addr) for addr in addrs]
    return await _until_direct(punch, timeout, *jobs)


async def quic_client(
    sock: SimDatagramSocket, addrs: Sequence[str], punch: Punch, key: bytes, timeout: float
) -> bool:
    """Send Initials to ``addrs`` (again after a probe timeout, doubling) until the server's
    answer arrives (the node's UDP reader calls ``punch.succeeded``) or ``timeout`` passes."""

    async def initials() -> None:
        pto = _INITIAL_PTO
        while True:
            for addr in addrs:
                sock.send_nowait(INITIAL + key, Multiaddr(addr))
            await anyio.sleep(pto)
            pto *= 2

    return await _until_direct(punch, timeout, initials)


async def udp_punches(
    sock: SimDatagramSocket,
    addrs: Sequence[str],
    punch: Punch,
    rng: random.Random,
    timeout: float,
) -> bool:
    """Send random UDP packets to ``addrs`` every 10-200 ms (DCUtR) until the client's
    connection is up or ``timeout`` passes."""

    async def packets() -> None:
        while True:
            for addr in addrs:
                sock.send_nowait(RANDOM + rng.randbytes(32), Multiaddr(addr))
            await anyio.sleep(rng.uniform(0.010, 0.200))

    return await _until_direct(punch, timeout, packets)
