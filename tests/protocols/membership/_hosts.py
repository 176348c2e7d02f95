"""A cluster of hosts running the Membership service over the memory transport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import anyio

from p2pstack.builder import open_host
from p2pstack.host import Host
from p2pstack.interfaces import Service
from protocols.membership import ConnectionPolicy, Membership, MemberState, SwimConfig
from transports.memory import MemoryNetwork, MemoryTransport
from transports.plaintext import Plaintext
from transports.yamux import Yamux

#: Fast timers: a probe every 0.2 s; suspicion 2-4 periods.
FAST = SwimConfig(
    probe_interval=0.2,
    probe_timeout=0.1,
    gossip_interval=0.05,
    push_pull_interval=2.0,
    suspicion_mult=2,
    suspicion_max_timeout_mult=2,
)


class Crashing(Membership):
    """A member whose host stops without leaving: a crash as the others see it."""

    async def stop(self) -> None:
        return


@asynccontextmanager
async def host(net: MemoryNetwork, services: Sequence[Service]) -> AsyncIterator[Host]:
    async with open_host(
        transports=[MemoryTransport(net)],
        security=[Plaintext()],
        muxers=[Yamux()],
        services=services,
        listen=["/memory/0"],
    ) as h:
        yield h


def membership(i: int, policy: ConnectionPolicy | None = None) -> Membership:
    return Membership(config=FAST, policy=policy, seed=i)


async def converge(hosts: Sequence[Host], expected: int, timeout: float = 10.0) -> None:
    """Wait until every host sees ``expected`` live members."""
    with anyio.fail_after(timeout):
        while True:
            if all(len(h.service(Membership).live_members()) == expected for h in hosts):
                return
            await anyio.sleep(0.05)


async def wait_state(
    hosts: Sequence[Host], peer: object, state: MemberState, timeout: float
) -> float:
    """Wait until every host sees ``peer`` in ``state``; return the seconds it took."""
    started = anyio.current_time()
    with anyio.fail_after(timeout):
        while True:
            members = [h.service(Membership).member(peer) for h in hosts]  # type: ignore[arg-type]  # the caller passes a PeerId typed loosely as object
            if all(m is not None and m.state is state for m in members):
                return anyio.current_time() - started
            await anyio.sleep(0.05)


@asynccontextmanager
async def cluster(
    n: int,
    *,
    make: Callable[[int], Service] = membership,
    extra: Callable[[int], Sequence[Service]] = lambda _i: (),
) -> AsyncIterator[tuple[list[Host], MemoryNetwork, list[AsyncExitStack]]]:
    """``n`` hosts, each joined through the first; yields the hosts, their network and one exit
    stack per host (close one to stop that host)."""
    net = MemoryNetwork()
    async with AsyncExitStack() as outer:
        stacks: list[AsyncExitStack] = []
        hosts: list[Host] = []
        for i in range(n):
            stack = await outer.enter_async_context(AsyncExitStack())
            hosts.append(await stack.enter_async_context(host(net, [make(i), *extra(i)])))
            stacks.append(stack)
        for h in hosts[1:]:
            await h.service(Membership).join(hosts[0].addrs[0], timeout=10)
        await converge(hosts, n - 1)
        yield hosts, net, stacks
