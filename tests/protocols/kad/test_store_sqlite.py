from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiaddr import Multiaddr

from p2pstack.identity import PeerId, generate_private_key
from protocols.kad._sqlite import SCHEMA_VERSION, SqliteStore, StoreSchemaError
from protocols.kad._store import (
    MemoryProviderStore,
    MemoryRecordStore,
    ProviderStore,
    RecordStore,
    RecordTooLarge,
    StoreFull,
)
from protocols.kad._types import KadPeer, Record


def _peer(seed: int) -> KadPeer:
    key = generate_private_key(random_bytes=lambda n: bytes([seed]) * n)
    addrs = (Multiaddr("/ip4/127.0.0.1/tcp/4001"), Multiaddr("/ip6/::1/udp/4001/quic-v1"))
    return KadPeer(PeerId.from_public_key(key.public_key), addrs)


class _Wall:
    def __init__(self, start: float) -> None:
        self.time = start

    def __call__(self) -> float:
        return self.time


def test_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "dht.db"
    with SqliteStore(path, clock=_Wall(1_000_000.0)) as store:
        records: RecordStore = store.records
        providers: ProviderStore = store.providers
        records.put(Record(b"/pk/a", b"v1", "2026-01-01T00:00:00Z"), now=5)
        records.put(Record(b"/pk/b", b"v2"), now=6)
        providers.add(b"\x12\x20" + b"k" * 32, _peer(1), now=7)
    with SqliteStore(path, clock=_Wall(1_000_000.0)) as again:
        assert again.records.get(b"/pk/a", now=0) == Record(b"/pk/a", b"v1", "2026-01-01T00:00:00Z")
        assert [r.key for r in again.records.records()] == [b"/pk/a", b"/pk/b"]
        assert again.providers.get(b"\x12\x20" + b"k" * 32, now=0) == [_peer(1)]
        assert len(again.records) == 2
        assert len(again.providers) == 1


def test_entries_age_across_restarts(tmp_path: Path) -> None:
    """The second process's clock starts at 0 again; wall time still ages the old entries."""
    path = tmp_path / "dht.db"
    wall = _Wall(1_000_000.0)
    with SqliteStore(path, record_ttl=100, provider_ttl=200, clock=wall) as store:
        store.records.put(Record(b"/t/a", b"v"), now=50)
        store.providers.add(b"key", _peer(1), now=50)
    wall.time += 150  # 150 s of downtime
    with SqliteStore(path, record_ttl=100, provider_ttl=200, clock=wall) as store:
        assert store.records.get(b"/t/a", now=0) is None
        assert store.providers.get(b"key", now=0) == [_peer(1)]
        assert store.providers.get(b"key", now=49) == [_peer(1)]
        assert store.providers.get(b"key", now=50) == []


def test_bounds_hold_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "dht.db"
    with SqliteStore(path, max_records=1, max_record_size=8, clock=_Wall(0)) as store:
        store.records.put(Record(b"/t/a", b"v"), now=0)
        with pytest.raises(RecordTooLarge):
            store.records.put(Record(b"/t/b", b"12345"), now=0)
    with SqliteStore(path, max_records=1, clock=_Wall(0)) as store, pytest.raises(StoreFull):
        store.records.put(Record(b"/t/b", b"v"), now=0)


def test_hostile_bytes_are_data(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "dht.db", clock=_Wall(0)) as store:
        key = b"/t/'); DROP TABLE records; --\x00\xff"
        store.records.put(Record(key, b"\x00'\"", "x'); --"), now=0)
        assert store.records.get(key, now=1) == Record(key, b"\x00'\"", "x'); --")
        assert store.records.get(b"/t/'", now=1) is None
        store.records.remove(key)
        assert len(store.records) == 0


def test_wal_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "dht.db"
    SqliteStore(path).close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.commit()
    finally:
        db.close()
    with pytest.raises(StoreSchemaError, match="schema version 2"):
        SqliteStore(path)


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        SqliteStore(path)


def test_damaged_provider_rows_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "dht.db"
    with SqliteStore(path, clock=_Wall(0)) as store:
        store.providers.add(b"k", _peer(1), now=0)
        store.providers.add(b"k", _peer(2), now=0)
        store.db.execute(
            "UPDATE providers SET peer = ? WHERE peer = ?", (b"bad", _peer(1).peer_id.to_bytes())
        )
        store.db.execute("UPDATE providers SET addrs = ?", (b"\x03\xff\xff\x03",))
        store.db.commit()
        assert store.providers.get(b"k", now=0) == [KadPeer(_peer(2).peer_id)]


def test_close_is_idempotent_and_shared(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "dht.db")
    store.providers.close()
    store.records.close()
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        len(store.records)


@pytest.mark.parametrize("bad", [{"max_records": 0}, {"provider_ttl": -1.0}, {"max_addrs": 0}])
def test_bad_bounds(tmp_path: Path, bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="positive"):
        SqliteStore(tmp_path / "dht.db", **bad)  # type: ignore[arg-type]


_PEERS = [_peer(seed) for seed in range(1, 6)]
_steps = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 4), st.integers(0, 4), st.booleans()),
    max_size=40,
)


@given(_steps)
def test_sqlite_and_memory_providers_agree(steps: list[tuple[int, int, int, bool]]) -> None:
    memory = MemoryProviderStore(max_keys=2, max_per_key=2, ttl=7)
    with SqliteStore(
        ":memory:", max_provider_keys=2, max_providers_per_key=2, provider_ttl=7, clock=_Wall(0)
    ) as sqlite:
        now = 0
        for key, peer, dt, expire in steps:
            now += dt
            provider = _PEERS[peer]
            assert memory.add(bytes([key]), provider, now) == sqlite.providers.add(
                bytes([key]), provider, now
            )
            if expire:
                assert memory.expire(now) == sqlite.providers.expire(now)
            for k in range(4):
                assert memory.get(bytes([k]), now) == sqlite.providers.get(bytes([k]), now)
            assert len(memory) == len(sqlite.providers)


@given(_steps)
def test_sqlite_and_memory_records_agree(steps: list[tuple[int, int, int, bool]]) -> None:
    memory = MemoryRecordStore(max_records=2, ttl=7)
    with SqliteStore(":memory:", max_records=2, record_ttl=7, clock=_Wall(0)) as sqlite:
        now = 0
        for key, value, dt, expire in steps:
            now += dt
            record = Record(b"/t/%d" % key, bytes([value]))
            outcomes = []
            for store in (memory, sqlite.records):
                try:
                    store.put(record, now)
                    outcomes.append(True)
                except StoreFull:
                    outcomes.append(False)
            assert outcomes[0] == outcomes[1]
            if expire:
                assert memory.expire(now) == sqlite.records.expire(now)
            for k in range(4):
                assert memory.get(b"/t/%d" % k, now) == sqlite.records.get(b"/t/%d" % k, now)
            assert memory.records() == sqlite.records.records()
