"""The DHT operations built on lookups: find a peer, get and put values, provide and find
providers (https://github.com/libp2p/specs/blob/master/kad-dht/README.md#value-storage-and-retrieval).

``get_value`` follows the spec: it collects values from several peers (until ``quorum`` valid
ones, or the lookup ends), selects the best with the namespace's selector, then sends the best
record (PUT_VALUE) to the peers that returned an outdated value and to the closest peers that
returned none.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING

import anyio

from p2pstack.errors import NETWORK_ERRORS
from protocols.kad._query import QueryDriver, put_message
from protocols.kad._types import (
    KadMessage,
    KadPeer,
    MessageType,
    NotFound,
    Record,
    RecordValidationError,
)

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.host import Host
    from p2pstack.identity import PeerId
    from protocols.kad._events import Counters
    from protocols.kad._lookup import Lookup, LookupResult
    from protocols.kad._validation import Validators

__all__ = [
    "connect_all",
    "find_peer",
    "get_value",
    "iterate_providers",
    "provide",
    "put_value",
    "stream_providers",
]

_log = logging.getLogger(__name__)

_ATTEMPT_ERRORS: tuple[type[BaseException], ...] = (*NETWORK_ERRORS, TimeoutError)


async def find_peer(queries: QueryDriver, target: PeerId) -> KadPeer:
    """Look up the addresses of ``target`` (stops at the first answer that has them).

    Raises:
        NotFound: no peer knew addresses of ``target``.
    """
    addrs: dict[Multiaddr, None] = {}

    def on_answer(_peer: PeerId, answer: KadMessage, lookup: Lookup) -> None:
        for peer in answer.closer_peers:
            if peer.peer_id == target and peer.addrs:
                addrs.update(dict.fromkeys(peer.addrs))
                lookup.stop()

    message = KadMessage(type=MessageType.FIND_NODE, key=target.to_bytes())
    result = await queries.lookup(target.to_bytes(), message, on_answer=on_answer)
    if addrs:
        return KadPeer(target, tuple(addrs))
    for peer in result.closest:
        if peer.peer_id == target:
            return peer
    raise NotFound(f"no DHT peer knows the addresses of {target}")


async def put_value(queries: QueryDriver, key: bytes, value: bytes) -> int:
    """Store ``key`` = ``value`` at the k peers closest to ``key``.

    Returns:
        The number of peers that stored it.

    Raises:
        NotFound: there is no peer to ask.
    """
    message = KadMessage(type=MessageType.FIND_NODE, key=key)
    result = await queries.lookup(key, message)
    return await queries.store_at([p.peer_id for p in result.closest], put_message(key, value))


async def get_value(
    queries: QueryDriver,
    validators: Validators,
    counters: Counters,
    key: bytes,
    *,
    quorum: int,
    local: Record | None,
) -> tuple[bytes, bool]:
    """Fetch the best value of ``key`` and correct peers that hold an outdated one.

    Args:
        queries: the lookup driver.
        validators: validate answers and select the best.
        counters: where invalid answers are counted.
        key: the record key.
        quorum: valid values to collect before the lookup stops (the local one counts).
        local: our own copy, if any (already validated by the store's owner).

    Returns:
        The best value and whether it differs from ``local`` (the caller then stores it).

    Raises:
        NotFound: no peer, and not the local store, had a valid value.
    """
    values: dict[PeerId, bytes] = {}
    without: set[PeerId] = set()
    have_local = 1 if local is not None else 0

    def on_answer(peer: PeerId, answer: KadMessage, lookup: Lookup) -> None:
        record = answer.record
        if record is None or record.key != key:
            without.add(peer)
            return
        try:
            validators.validate(key, record.value)
        except RecordValidationError as exc:
            counters.bad_values += 1
            _log.debug("invalid record for %r from %s: %s", key, peer, exc)
            without.add(peer)
            return
        values[peer] = record.value
        if len(values) + have_local >= quorum:
            lookup.stop()

    message = KadMessage(type=MessageType.GET_VALUE, key=key)
    try:
        result: LookupResult | None = await queries.lookup(key, message, on_answer=on_answer)
    except NotFound:
        if local is None:
            raise
        result = None
    candidates = list(values.values()) + ([local.value] if local is not None else [])
    if not candidates:
        raise NotFound(f"no value found for {key!r}")
    best = candidates[validators.select(key, candidates)]
    outdated = [p for p, v in values.items() if v != best]
    if result is not None:
        outdated += [p.peer_id for p in result.closest if p.peer_id in without]
    if outdated:
        await queries.store_at(outdated, put_message(key, best))
    return best, local is None or local.value != best


async def provide(queries: QueryDriver, key: bytes, me: KadPeer) -> int:
    """Announce ``me`` as a provider of ``key`` to the k peers closest to it.

    Returns:
        The number of peers the ADD_PROVIDER was delivered to (the spec has no answer).

    Raises:
        NotFound: there is no peer to ask.
    """
    result = await queries.lookup(key, KadMessage(type=MessageType.FIND_NODE, key=key))
    message = KadMessage(type=MessageType.ADD_PROVIDER, key=key, provider_peers=(me,))
    return await queries.store_at([p.peer_id for p in result.closest], message)


async def stream_providers(
    queries: QueryDriver, key: bytes, offer: Callable[[KadPeer], bool]
) -> None:
    """Look up providers of ``key``, handing each to ``offer`` (which says whether it wants
    more); their addresses go into the peerstore.

    Raises:
        NotFound: there is no peer to ask.
    """

    def on_answer(_peer: PeerId, answer: KadMessage, lookup: Lookup) -> None:
        queries.learn(answer.provider_peers)
        for provider in answer.provider_peers:
            if not offer(provider):
                lookup.stop()
                return

    message = KadMessage(type=MessageType.GET_PROVIDERS, key=key)
    await queries.lookup(key, message, on_answer=on_answer)


async def connect_all(host: Host, addrs: Sequence[Multiaddr], timeout: float) -> list[PeerId]:
    """Connect to each of ``addrs`` at once (bootstrap peers).

    Returns:
        The peers reached; failures are logged and skipped.
    """
    reached: list[PeerId] = []

    async def connect(addr: Multiaddr) -> None:
        try:
            with anyio.fail_after(timeout):
                conn = await host.connect(addr)
        except _ATTEMPT_ERRORS as exc:
            _log.info("DHT bootstrap peer %s unreachable: %r", addr, exc)
            return
        reached.append(conn.remote_peer)

    async with anyio.create_task_group() as tg:
        for addr in addrs:
            tg.start_soon(connect, addr)
    return reached


async def iterate_providers(
    host: Host, queries: QueryDriver, local: Sequence[KadPeer], key: bytes, limit: int
) -> AsyncIterator[KadPeer]:
    """Yield ``local`` providers, then those a GET_PROVIDERS lookup finds, each once, at most
    ``limit``. The lookup runs in a host task feeding a bounded channel, so the consumer may
    stop at any time (the lookup is then cancelled).

    Raises:
        NotFound: nothing found and no peer to ask.
        P2PError: the lookup failed before anything was found.
    """
    send, receive = anyio.create_memory_object_stream[KadPeer](limit)
    seen: set[PeerId] = set()

    def offer(provider: KadPeer) -> bool:
        if provider.peer_id not in seen and len(seen) < limit:
            seen.add(provider.peer_id)
            try:
                send.send_nowait(provider)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return False
        return len(seen) < limit

    for provider in local:
        offer(provider)
    failures: list[BaseException] = []
    scope = anyio.CancelScope()

    async def produce() -> None:
        with send, scope:
            if len(seen) < limit:
                try:
                    await stream_providers(queries, key, offer)
                except _ATTEMPT_ERRORS as exc:
                    failures.append(exc)

    host.start_soon(produce, name="kad find providers")
    try:
        async with receive:
            async for provider in receive:
                yield provider
    finally:
        scope.cancel()
    if failures and not seen:
        raise failures[0]
