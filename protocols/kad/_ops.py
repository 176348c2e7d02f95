"""The DHT operations built on lookups: find a peer, get and put values, provide and find
providers (https://github.com/libp2p/specs/blob/master/kad-dht/README.md#value-storage-and-retrieval).

``get_value`` follows the spec: it collects values from several peers (until ``quorum`` valid
ones, or the lookup ends), selects the best with the namespace's selector, then sends the best
record (PUT_VALUE) to the peers that returned an outdated value and to the closest peers that
returned none.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING

import anyio
import attrs

from p2pstack.errors import NETWORK_ERRORS
from protocols.kad._query import QueryDriver, dialable_addrs, put_message, with_dialable_addrs
from protocols.kad._store import StoreFull
from protocols.kad._types import (
    KadMessage,
    KadPeer,
    MessageType,
    NotFound,
    Record,
    RecordValidationError,
)
from protocols.kad._wire import format_time_received

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.host import Host
    from p2pstack.identity import PeerId
    from protocols.kad._events import Counters
    from protocols.kad._lookup import Lookup, LookupResult
    from protocols.kad._store import RecordStore
    from protocols.kad._validation import Validators

__all__ = [
    "connect_all",
    "find_peer",
    "get_value",
    "iterate_providers",
    "lookup_check",
    "provide",
    "put_value",
    "store_locally",
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
            if peer.peer_id == target and (dialable := dialable_addrs(peer)):
                addrs.update(dict.fromkeys(dialable))
                lookup.stop()

    message = KadMessage(type=MessageType.FIND_NODE, key=target.to_bytes())
    result = await queries.lookup(target.to_bytes(), message, on_answer=on_answer)
    if addrs:
        return KadPeer(target, tuple(addrs))
    for peer in result.closest:
        if peer.peer_id == target:
            return with_dialable_addrs(peer)
    raise NotFound(f"no DHT peer knows the addresses of {target}")


async def lookup_check(queries: QueryDriver, local: PeerId, peer: PeerId) -> None:
    """Ask ``peer`` for the peers closest to ``local``; if it answers it is a working server and
    enters the routing table (the driver's ``on_server``). Failures are logged only."""
    try:
        answer = await queries.request(
            peer, KadMessage(type=MessageType.FIND_NODE, key=local.to_bytes())
        )
    except _ATTEMPT_ERRORS as exc:
        _log.debug("DHT peer %s failed its lookup check: %r", peer, exc)
        return
    if answer is not None:
        queries.learn(answer.closer_peers)


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


def store_locally(records: RecordStore, record: Record, now: float) -> None:
    """Keep ``record`` in our own store, stamped with the wall-clock time (a full store only
    logs: the record still goes to the network)."""
    stamped = attrs.evolve(record, time_received=format_time_received(time.time()))
    try:
        records.put(stamped, now)
    except StoreFull as exc:
        _log.info("local record store full, %r kept only remotely: %s", record.key, exc)


def _valid_local(
    validators: Validators, records: RecordStore, key: bytes, now: float
) -> Record | None:
    local = records.get(key, now)
    if local is None:
        return None
    try:
        validators.validate(key, local.value)
    except RecordValidationError:
        return None  # (an IPNS record past its EOL, say)
    return local


async def get_value(
    queries: QueryDriver,
    validators: Validators,
    counters: Counters,
    records: RecordStore,
    key: bytes,
    *,
    quorum: int,
    now: float,
) -> bytes:
    """Fetch the best value of ``key`` and correct peers that hold an outdated one (and our
    own store, when it held one).

    Args:
        queries: the lookup driver.
        validators: validate answers and select the best.
        counters: where invalid answers are counted.
        records: our record store (its valid copy counts toward the quorum).
        key: the record key.
        quorum: valid values to collect before the lookup stops.
        now: the current time.

    Returns:
        The best value.

    Raises:
        NotFound: no peer, and not the local store, had a valid value.
        RecordValidationError: the key has no known namespace.
    """
    validators.validator(key)
    local = _valid_local(validators, records, key, now)
    if local is not None and quorum <= 1:
        return local.value  # the local copy is a quorum of one
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
    await _correct(queries, records, Record(key, best), outdated, local=local, now=now)
    return best


async def _correct(
    queries: QueryDriver,
    records: RecordStore,
    best: Record,
    outdated: Sequence[PeerId],
    *,
    local: Record | None,
    now: float,
) -> None:
    # The spec: "update any peers that returned older values, or which are among the closest
    # peers which did not return any value". Our own outdated copy is replaced too.
    if outdated:
        await queries.store_at(outdated, put_message(best.key, best.value))
    if local is not None and local.value != best.value:
        store_locally(records, best, now)


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
            if not offer(with_dialable_addrs(provider)):
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
