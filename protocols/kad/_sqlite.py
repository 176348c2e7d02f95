"""A persistent record and provider store on stdlib ``sqlite3``: what a DHT server holds survives a
restart, with the same bounds and expiry as the memory stores (:mod:`protocols.kad._store`).

One connection in WAL mode (readers never block the writer, a crash loses at most the last
transaction), every statement with bound parameters, the schema versioned by ``PRAGMA
user_version``. Calls are synchronous and short (indexed lookups on a local file); the DHT makes
them from its one event loop, so they are not spread over threads.

Time: the stores' callers pass ``now`` on their own clock (anyio's, which restarts with the
process). To age entries across restarts, each entry is stamped with *wall-clock* time: the first
call maps the caller's ``now`` onto ``clock()`` and later calls keep that offset, so within one
process expiry follows ``now`` exactly as the memory stores do.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable

from multiaddr import Multiaddr

from p2pstack.errors import InvalidPeerIdError, RemoteProtocolError
from p2pstack.identity import PeerId
from p2pstack.multiaddrs import decode_multiaddr
from p2pstack.varint import IncompleteVarint, decode_uvarint, encode_uvarint
from protocols.kad._store import (
    DEFAULT_MAX_ADDRS_PER_PROVIDER,
    DEFAULT_MAX_PROVIDER_KEYS,
    DEFAULT_MAX_PROVIDERS_PER_KEY,
    DEFAULT_MAX_RECORD_SIZE,
    DEFAULT_MAX_RECORDS,
    DEFAULT_PROVIDER_TTL,
    DEFAULT_RECORD_TTL,
    StoreFull,
    check_record_size,
    trim_provider,
)
from protocols.kad._types import KadError, KadPeer, Record

__all__ = ["SCHEMA_VERSION", "SqliteStore", "StoreSchemaError"]

#: ``PRAGMA user_version`` of the layout below; a file with another version is refused.
SCHEMA_VERSION = 1
_SCHEMA = (
    """CREATE TABLE records (
        key BLOB PRIMARY KEY, value BLOB NOT NULL, time_received TEXT NOT NULL,
        stored_at REAL NOT NULL)""",
    "CREATE INDEX records_stored_at ON records (stored_at)",
    """CREATE TABLE providers (
        key BLOB NOT NULL, peer BLOB NOT NULL, addrs BLOB NOT NULL, stored_at REAL NOT NULL,
        PRIMARY KEY (key, peer))""",
    "CREATE INDEX providers_stored_at ON providers (stored_at)",
)


class StoreSchemaError(KadError):
    """The database file was written by an unknown schema version."""


class _Anchor:
    """Maps the caller's ``now`` to wall-clock seconds by the offset seen at the first call."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._offset: float | None = None

    def wall(self, now: float) -> float:
        if self._offset is None:
            self._offset = self._clock() - now
        return now + self._offset


def _encode_addrs(addrs: tuple[Multiaddr, ...]) -> bytes:
    out = bytearray()
    for addr in addrs:
        raw = addr.to_bytes()
        out += encode_uvarint(len(raw)) + raw
    return bytes(out)


def _decode_addrs(blob: bytes) -> tuple[Multiaddr, ...]:
    """Inverse of :func:`_encode_addrs`; a damaged address is skipped, damaged framing ends the
    list."""
    addrs: list[Multiaddr] = []
    pos = 0
    while pos < len(blob):
        try:
            length, pos = decode_uvarint(blob, pos)
        except (IncompleteVarint, RemoteProtocolError):
            break
        raw = blob[pos : pos + length]
        pos += length
        addr = decode_multiaddr(raw)
        if addr is not None:
            addrs.append(addr)
    return tuple(addrs)


class _SqliteRecords:
    """The :class:`~protocols.kad._store.RecordStore` half of a :class:`SqliteStore`."""

    def __init__(self, owner: SqliteStore, max_records: int, max_size: int, ttl: float) -> None:
        self._owner = owner
        self.max_records = max_records
        self.max_record_size = max_size
        self.ttl = ttl

    def get(self, key: bytes, now: float) -> Record | None:
        """See :meth:`RecordStore.get`."""
        row = self._owner.db.execute(
            "SELECT value, time_received, stored_at FROM records WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        if self._owner.anchor.wall(now) - row[2] >= self.ttl:
            self.remove(key)
            return None
        return Record(key, row[0], row[1])

    def put(self, record: Record, now: float) -> None:
        """See :meth:`RecordStore.put`.

        Raises:
            RecordTooLarge: over ``max_record_size``.
            StoreFull: a new key while ``max_records`` live records are held.
        """
        check_record_size(record, self.max_record_size)
        db = self._owner.db
        known = db.execute("SELECT 1 FROM records WHERE key = ?", (record.key,)).fetchone()
        if known is None and len(self) >= self.max_records:
            self.expire(now)
            if len(self) >= self.max_records:
                raise StoreFull(f"record store holds {self.max_records} live records")
        with db:
            # REPLACE deletes and re-inserts, so rowid order is put order.
            db.execute(
                "INSERT OR REPLACE INTO records (key, value, time_received, stored_at)"
                " VALUES (?, ?, ?, ?)",
                (record.key, record.value, record.time_received, self._owner.anchor.wall(now)),
            )

    def remove(self, key: bytes) -> None:
        """See :meth:`RecordStore.remove`."""
        with self._owner.db as db:
            db.execute("DELETE FROM records WHERE key = ?", (key,))

    def records(self) -> list[Record]:
        """See :meth:`RecordStore.records`."""
        rows = self._owner.db.execute(
            "SELECT key, value, time_received FROM records ORDER BY rowid"
        ).fetchall()
        return [Record(key, value, received) for key, value, received in rows]

    def expire(self, now: float) -> int:
        """See :meth:`RecordStore.expire`."""
        cutoff = self._owner.anchor.wall(now) - self.ttl
        with self._owner.db as db:
            return db.execute("DELETE FROM records WHERE stored_at <= ?", (cutoff,)).rowcount

    def __len__(self) -> int:
        return int(self._owner.db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def close(self) -> None:
        """Close the whole database (records and providers)."""
        self._owner.close()


class _SqliteProviders:
    """The :class:`~protocols.kad._store.ProviderStore` half of a :class:`SqliteStore`."""

    def __init__(
        self, owner: SqliteStore, max_keys: int, max_per_key: int, ttl: float, max_addrs: int
    ) -> None:
        self._owner = owner
        self.max_keys = max_keys
        self.max_per_key = max_per_key
        self.ttl = ttl
        self.max_addrs = max_addrs

    def _count(self, sql: str, *params: object) -> int:
        return int(self._owner.db.execute(sql, params).fetchone()[0])

    def _room(self, key: bytes, peer: bytes, now: float) -> bool:
        """Whether ``peer`` may be added under ``key``: it is known there, or both the key table
        and the key's list have room (after dropping expired entries if need be)."""
        if self._owner.db.execute(
            "SELECT 1 FROM providers WHERE key = ? AND peer = ?", (key, peer)
        ).fetchone():
            return True
        for attempt in range(2):
            per_key = self._count("SELECT COUNT(*) FROM providers WHERE key = ?", key)
            keys = self._count("SELECT COUNT(DISTINCT key) FROM providers")
            if per_key < self.max_per_key and (per_key > 0 or keys < self.max_keys):
                return True
            if attempt == 0:
                self.expire(now)
        return False

    def add(self, key: bytes, provider: KadPeer, now: float) -> bool:
        """See :meth:`ProviderStore.add`."""
        peer = provider.peer_id.to_bytes()
        if not self._room(key, peer, now):
            return False
        stored = trim_provider(provider, self.max_addrs)
        with self._owner.db as db:
            db.execute(
                "INSERT OR REPLACE INTO providers (key, peer, addrs, stored_at)"
                " VALUES (?, ?, ?, ?)",
                (key, peer, _encode_addrs(stored.addrs), self._owner.anchor.wall(now)),
            )
        return True

    def get(self, key: bytes, now: float) -> list[KadPeer]:
        """See :meth:`ProviderStore.get`."""
        cutoff = self._owner.anchor.wall(now) - self.ttl
        with self._owner.db as db:
            db.execute("DELETE FROM providers WHERE key = ? AND stored_at <= ?", (key, cutoff))
        rows = self._owner.db.execute(
            "SELECT peer, addrs FROM providers WHERE key = ? ORDER BY rowid DESC", (key,)
        ).fetchall()
        found = []
        for peer, addrs in rows:
            try:
                found.append(KadPeer(PeerId.from_bytes(peer), _decode_addrs(addrs)))
            except InvalidPeerIdError:
                continue  # a damaged row: skip it rather than fail every lookup of the key
        return found

    def expire(self, now: float) -> int:
        """See :meth:`ProviderStore.expire`."""
        cutoff = self._owner.anchor.wall(now) - self.ttl
        with self._owner.db as db:
            return db.execute("DELETE FROM providers WHERE stored_at <= ?", (cutoff,)).rowcount

    def __len__(self) -> int:
        return self._count("SELECT COUNT(*) FROM providers")

    def close(self) -> None:
        """Close the whole database (records and providers)."""
        self._owner.close()


class SqliteStore:
    """Records and providers in one SQLite file, surviving restarts.

    Use ``store.records`` as the :class:`~protocols.kad._store.RecordStore` and
    ``store.providers`` as the :class:`~protocols.kad._store.ProviderStore`; close either (or the
    store) to close the file. Also a context manager.

    Args:
        path: the database file (created if absent); ``":memory:"`` for a throwaway one.
        max_records, max_record_size, record_ttl: as :class:`MemoryRecordStore`'s.
        max_provider_keys, max_providers_per_key, provider_ttl, max_addrs: as
            :class:`MemoryProviderStore`'s ``max_keys``, ``max_per_key``, ``ttl``, ``max_addrs``.
        clock: the wall clock (UNIX seconds) entries are stamped with.

    Raises:
        StoreSchemaError: the file holds another schema version.
        sqlite3.Error: the file cannot be opened or is not a database.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_records: int = DEFAULT_MAX_RECORDS,
        max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
        record_ttl: float = DEFAULT_RECORD_TTL,
        max_provider_keys: int = DEFAULT_MAX_PROVIDER_KEYS,
        max_providers_per_key: int = DEFAULT_MAX_PROVIDERS_PER_KEY,
        provider_ttl: float = DEFAULT_PROVIDER_TTL,
        max_addrs: int = DEFAULT_MAX_ADDRS_PER_PROVIDER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        bounds = (max_records, max_record_size, record_ttl, max_provider_keys)
        if min(*bounds, max_providers_per_key, provider_ttl, max_addrs) <= 0:
            raise ValueError("store bounds and TTLs must be positive")
        self.db = sqlite3.connect(os.fspath(path), check_same_thread=False)
        try:
            self._migrate()
        except BaseException:
            self.db.close()
            raise
        self.anchor = _Anchor(clock)
        self._closed = False
        self.records = _SqliteRecords(self, max_records, max_record_size, record_ttl)
        self.providers = _SqliteProviders(
            self, max_provider_keys, max_providers_per_key, provider_ttl, max_addrs
        )

    def _migrate(self) -> None:
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version == SCHEMA_VERSION:
            return
        if version != 0:
            raise StoreSchemaError(f"store schema version {version}, expected {SCHEMA_VERSION}")
        with self.db:
            for statement in _SCHEMA:
                self.db.execute(statement)
            # PRAGMA takes no bound parameters; the value is our own integer constant.
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the database file (idempotent)."""
        if not self._closed:
            self._closed = True
            self.db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
