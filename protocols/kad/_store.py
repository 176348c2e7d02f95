"""Record and provider stores of a DHT node: the interfaces the request handler uses and bounded,
expiring in-memory implementations (https://github.com/libp2p/specs/blob/master/kad-dht/README.md#value-storage-and-retrieval,
#content-provider-advertisement-and-discovery).

Time is the caller's ``now`` (seconds); nothing here reads a clock, so the same calls give the same
state. Every table is bounded: a store that is full refuses new keys (after dropping what has
expired) rather than evicting live entries, so a flood of fresh keys cannot push out the records
and providers already held; updates of existing entries are always accepted.

Defaults: records live 36 h like go-libp2p-kad-dht's ``MaxRecordAge`` (js keeps them 36 h too);
providers 48 h, the spec's and go's provider expiry.
"""

from __future__ import annotations

from typing import Protocol

import attrs

from p2pstack.identity import PeerId
from protocols.kad._types import KadError, KadPeer, Record, RecordValidationError

__all__ = [
    "DEFAULT_MAX_ADDRS_PER_PROVIDER",
    "DEFAULT_MAX_PROVIDERS_PER_KEY",
    "DEFAULT_MAX_PROVIDER_KEYS",
    "DEFAULT_MAX_RECORDS",
    "DEFAULT_MAX_RECORD_SIZE",
    "DEFAULT_PROVIDER_TTL",
    "DEFAULT_RECORD_TTL",
    "MemoryProviderStore",
    "MemoryRecordStore",
    "ProviderStore",
    "RecordStore",
    "RecordTooLarge",
    "StoreFull",
    "check_record_size",
    "trim_provider",
]

#: go's ``MaxRecordAge``: a stored record is dropped 36 h after it was put.
DEFAULT_RECORD_TTL = 36 * 3600.0
#: Provider records expire after 48 h (spec; go and js agree).
DEFAULT_PROVIDER_TTL = 48 * 3600.0
#: Distinct record keys held at once.
DEFAULT_MAX_RECORDS = 10_000
#: Largest ``key + value`` accepted; an IPNS record is at most 10 KiB, and 16 KiB leaves room for
#: other namespaces while keeping the worst case at ~160 MiB for the default count.
DEFAULT_MAX_RECORD_SIZE = 16 * 1024
#: Distinct provider keys (CID multihashes) held at once.
DEFAULT_MAX_PROVIDER_KEYS = 50_000
#: Providers kept per key; GET_PROVIDERS answers with at most k = 20 anyway, more only helps
#: when some have gone away.
DEFAULT_MAX_PROVIDERS_PER_KEY = 100
#: Addresses kept per provider; the rest are dropped.
DEFAULT_MAX_ADDRS_PER_PROVIDER = 16


class StoreFull(KadError):
    """The store holds its maximum number of keys and none has expired."""


class RecordTooLarge(RecordValidationError):
    """A record's key and value together exceed the store's size limit."""


class RecordStore(Protocol):
    """Where a DHT server keeps the records peers PUT. Calls never block (beyond local disk I/O
    for a persistent store)."""

    def get(self, key: bytes, now: float) -> Record | None:
        """The live record under ``key``, or ``None`` (absent or expired)."""
        ...

    def put(self, record: Record, now: float) -> None:
        """Store ``record`` (replacing any under its key), stamped ``now`` for expiry.

        Raises:
            RecordTooLarge: the record exceeds the size limit.
            StoreFull: a new key while every slot holds a live record.
        """
        ...

    def remove(self, key: bytes) -> None:
        """Forget ``key`` (no error when absent)."""
        ...

    def records(self) -> list[Record]:
        """Every record held, in put order (some may have expired since; :meth:`get` says)."""
        ...

    def expire(self, now: float) -> int:
        """Drop expired records. Returns how many were dropped."""
        ...

    def __len__(self) -> int:
        """Number of records held (expired ones not yet dropped included)."""
        ...

    def close(self) -> None:
        """Release resources; the store is unusable afterwards."""
        ...


class ProviderStore(Protocol):
    """Who provides which key (a CID's multihash bytes)."""

    def add(self, key: bytes, provider: KadPeer, now: float) -> bool:
        """Record that ``provider`` provides ``key`` as of ``now`` (refreshes a known one).

        Returns:
            ``True`` if stored or refreshed, ``False`` if refused because the key table or that
            key's provider list is full of live entries.
        """
        ...

    def get(self, key: bytes, now: float) -> list[KadPeer]:
        """The live providers of ``key``, most recently added first."""
        ...

    def expire(self, now: float) -> int:
        """Drop expired provider entries. Returns how many were dropped."""
        ...

    def __len__(self) -> int:
        """Number of (key, provider) entries held."""
        ...

    def close(self) -> None:
        """Release resources; the store is unusable afterwards."""
        ...


def check_record_size(record: Record, max_record_size: int) -> None:
    """Raise :class:`RecordTooLarge` when ``key + value`` exceeds ``max_record_size``."""
    size = len(record.key) + len(record.value)
    if size > max_record_size:
        raise RecordTooLarge(f"record of {size} bytes exceeds the {max_record_size}-byte limit")


def trim_provider(provider: KadPeer, max_addrs: int) -> KadPeer:
    """The provider as stored: its first ``max_addrs`` addresses, connection state dropped."""
    return KadPeer(provider.peer_id, tuple(provider.addrs[:max_addrs]))


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be positive, not {value}")


@attrs.define
class _Stored:
    record: Record
    stored_at: float


class MemoryRecordStore:
    """A bounded in-memory :class:`RecordStore`.

    Args:
        max_records: distinct keys held at once.
        max_record_size: largest ``len(key) + len(value)`` accepted.
        ttl: seconds a record lives after its last put.

    Raises:
        ValueError: a bound is not positive.
    """

    def __init__(
        self,
        *,
        max_records: int = DEFAULT_MAX_RECORDS,
        max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
        ttl: float = DEFAULT_RECORD_TTL,
    ) -> None:
        _positive("max_records", max_records)
        _positive("max_record_size", max_record_size)
        _positive("ttl", ttl)
        self.max_records = max_records
        self.max_record_size = max_record_size
        self.ttl = ttl
        self._items: dict[bytes, _Stored] = {}

    def get(self, key: bytes, now: float) -> Record | None:
        """See :meth:`RecordStore.get`."""
        stored = self._items.get(key)
        if stored is None:
            return None
        if now - stored.stored_at >= self.ttl:
            del self._items[key]
            return None
        return stored.record

    def put(self, record: Record, now: float) -> None:
        """See :meth:`RecordStore.put`.

        Raises:
            RecordTooLarge: over ``max_record_size``.
            StoreFull: a new key while ``max_records`` live records are held.
        """
        check_record_size(record, self.max_record_size)
        if record.key not in self._items and len(self._items) >= self.max_records:
            self.expire(now)
            if len(self._items) >= self.max_records:
                raise StoreFull(f"record store holds {self.max_records} live records")
        # Re-insert so that records() keeps put order.
        self._items.pop(record.key, None)
        self._items[record.key] = _Stored(record, now)

    def remove(self, key: bytes) -> None:
        """See :meth:`RecordStore.remove`."""
        self._items.pop(key, None)

    def records(self) -> list[Record]:
        """See :meth:`RecordStore.records`."""
        return [stored.record for stored in self._items.values()]

    def expire(self, now: float) -> int:
        """See :meth:`RecordStore.expire`. Costs O(expired): entries are in put order, hence in
        ``stored_at`` order, so the scan stops at the first live one."""
        dropped = 0
        while self._items:
            key, stored = next(iter(self._items.items()))
            if now - stored.stored_at < self.ttl:
                break
            del self._items[key]
            dropped += 1
        return dropped

    def __len__(self) -> int:
        return len(self._items)

    def close(self) -> None:
        """Drop everything."""
        self._items.clear()


class MemoryProviderStore:
    """A bounded in-memory :class:`ProviderStore`.

    Args:
        max_keys: distinct keys with providers held at once.
        max_per_key: providers kept per key.
        ttl: seconds a provider entry lives after its last add.
        max_addrs: addresses kept per provider.

    Raises:
        ValueError: a bound is not positive.
    """

    def __init__(
        self,
        *,
        max_keys: int = DEFAULT_MAX_PROVIDER_KEYS,
        max_per_key: int = DEFAULT_MAX_PROVIDERS_PER_KEY,
        ttl: float = DEFAULT_PROVIDER_TTL,
        max_addrs: int = DEFAULT_MAX_ADDRS_PER_PROVIDER,
    ) -> None:
        for name, bound in (("max_keys", max_keys), ("max_per_key", max_per_key), ("ttl", ttl)):
            _positive(name, bound)
        _positive("max_addrs", max_addrs)
        self.max_keys = max_keys
        self.max_per_key = max_per_key
        self.ttl = ttl
        self.max_addrs = max_addrs
        # Every entry in add order (so in time order: expiry scans stop at the first live one),
        # and each key's providers in add order.
        self._entries: dict[tuple[bytes, PeerId], tuple[KadPeer, float]] = {}
        self._keys: dict[bytes, dict[PeerId, None]] = {}

    def _drop(self, key: bytes, peer: PeerId) -> None:
        del self._entries[key, peer]
        providers = self._keys[key]
        del providers[peer]
        if not providers:
            del self._keys[key]

    def add(self, key: bytes, provider: KadPeer, now: float) -> bool:
        """See :meth:`ProviderStore.add`."""
        peer = provider.peer_id
        if (key, peer) not in self._entries and not self._has_room(key, now):
            return False
        if (key, peer) in self._entries:
            self._drop(key, peer)  # re-added at the end: it is now the newest
        self._entries[key, peer] = (trim_provider(provider, self.max_addrs), now)
        self._keys.setdefault(key, {})[peer] = None
        return True

    def _has_room(self, key: bytes, now: float) -> bool:
        for attempt in range(2):
            providers = self._keys.get(key)
            if providers is None:
                if len(self._keys) < self.max_keys:
                    return True
            elif len(providers) < self.max_per_key:
                return True
            if attempt == 0:
                self.expire(now)
        return False

    def get(self, key: bytes, now: float) -> list[KadPeer]:
        """See :meth:`ProviderStore.get`."""
        for peer in list(self._keys.get(key, {})):  # oldest first: drop until a live one
            if now - self._entries[key, peer][1] < self.ttl:
                break
            self._drop(key, peer)
        return [self._entries[key, peer][0] for peer in reversed(self._keys.get(key, {}))]

    def expire(self, now: float) -> int:
        """See :meth:`ProviderStore.expire`. Costs O(expired), as for records."""
        dropped = 0
        while self._entries:
            (key, peer), (_, added) = next(iter(self._entries.items()))
            if now - added < self.ttl:
                break
            self._drop(key, peer)
            dropped += 1
        return dropped

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        """Drop everything."""
        self._entries.clear()
        self._keys.clear()
