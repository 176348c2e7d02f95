from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from multiaddr import Multiaddr

from p2pstack.identity import PeerId, generate_private_key
from protocols.kad._sqlite import SqliteStore
from protocols.kad._store import (
    DEFAULT_PROVIDER_TTL,
    DEFAULT_RECORD_TTL,
    MemoryProviderStore,
    MemoryRecordStore,
    ProviderStore,
    RecordStore,
    RecordTooLarge,
    StoreFull,
)
from protocols.kad._types import ConnectionType, KadPeer, Record, RecordValidationError

RecordFactory = Callable[..., RecordStore]
ProviderFactory = Callable[..., ProviderStore]


@pytest.fixture(params=["memory", "sqlite"])
def make_records(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RecordFactory]:
    """Builds a record store of either kind with the bounds given (memory-store keywords)."""
    opened: list[SqliteStore] = []

    def make(**bounds: Any) -> RecordStore:
        if request.param == "memory":
            return MemoryRecordStore(**bounds)
        if "ttl" in bounds:
            bounds["record_ttl"] = bounds.pop("ttl")
        opened.append(SqliteStore(tmp_path / f"{len(opened)}.db", clock=lambda: 0.0, **bounds))
        return opened[-1].records

    yield make
    for store in opened:
        store.close()


@pytest.fixture(params=["memory", "sqlite"])
def make_providers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProviderFactory]:
    """Builds a provider store of either kind with the bounds given (memory-store keywords)."""
    opened: list[SqliteStore] = []
    names = {"max_keys": "max_provider_keys", "max_per_key": "max_providers_per_key"}

    def make(**bounds: Any) -> ProviderStore:
        if request.param == "memory":
            return MemoryProviderStore(**bounds)
        renamed = {names.get(k, "provider_ttl" if k == "ttl" else k): v for k, v in bounds.items()}
        opened.append(SqliteStore(tmp_path / f"{len(opened)}.db", clock=lambda: 0.0, **renamed))
        return opened[-1].providers

    yield make
    for store in opened:
        store.close()


def _peer(seed: int, addrs: int = 1) -> KadPeer:
    key = generate_private_key(random_bytes=lambda n: bytes([seed]) * n)
    return KadPeer(
        PeerId.from_public_key(key.public_key),
        tuple(Multiaddr(f"/ip4/10.0.0.{i}/tcp/4001") for i in range(addrs)),
    )


def _record(key: bytes, value: bytes = b"v") -> Record:
    return Record(key, value, "2026-01-01T00:00:00Z")


def test_defaults_follow_go() -> None:
    assert DEFAULT_RECORD_TTL == 36 * 3600
    assert DEFAULT_PROVIDER_TTL == 48 * 3600
    records: RecordStore = MemoryRecordStore()
    providers: ProviderStore = MemoryProviderStore()
    assert len(records) == len(providers) == 0


def test_record_put_get_replace_remove(make_records: RecordFactory) -> None:
    store = make_records()
    store.put(_record(b"/a", b"1"), now=0)
    store.put(_record(b"/b", b"2"), now=1)
    store.put(_record(b"/a", b"3"), now=2)
    assert store.get(b"/a", now=3) == _record(b"/a", b"3")
    assert [r.key for r in store.records()] == [b"/b", b"/a"]
    store.remove(b"/a")
    store.remove(b"/missing")
    assert store.get(b"/a", now=3) is None
    assert len(store) == 1


def test_record_expiry_restarts_on_put(make_records: RecordFactory) -> None:
    store = make_records(ttl=10)
    store.put(_record(b"/a"), now=0)
    store.put(_record(b"/b"), now=5)
    assert store.get(b"/a", now=9.9) is not None
    assert store.get(b"/a", now=10) is None
    assert len(store) == 1
    store.put(_record(b"/b"), now=12)
    assert store.expire(now=21) == 0
    assert store.expire(now=22) == 1
    assert len(store) == 0


def test_record_bounds(make_records: RecordFactory) -> None:
    store = make_records(max_records=2, max_record_size=10, ttl=10)
    with pytest.raises(RecordTooLarge, match="11 bytes"):
        store.put(_record(b"/k", b"123456789"), now=0)
    assert issubclass(RecordTooLarge, RecordValidationError)
    store.put(_record(b"/k", b"12345678"), now=0)
    store.put(_record(b"/l"), now=5)
    with pytest.raises(StoreFull):
        store.put(_record(b"/m"), now=6)
    store.put(_record(b"/k", b"new"), now=6)  # updates are always accepted
    store.put(_record(b"/m"), now=15.5)  # /l expired at 15, which makes room
    assert sorted(r.key for r in store.records()) == [b"/k", b"/m"]
    assert len(store) == 2


def test_record_close() -> None:
    store = MemoryRecordStore()
    store.put(_record(b"/a"), now=0)
    store.close()
    assert len(store) == 0


@pytest.mark.parametrize("bad", [{"max_records": 0}, {"max_record_size": -1}, {"ttl": 0}])
def test_record_store_rejects_bad_bounds(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="positive"):
        MemoryRecordStore(**bad)  # type: ignore[arg-type]


def test_providers_add_get_refresh_order(make_providers: ProviderFactory) -> None:
    store = make_providers()
    a, b, c = _peer(1), _peer(2), _peer(3)
    assert store.add(b"k", a, now=0)
    assert store.add(b"k", b, now=1)
    assert store.add(b"k", c, now=2)
    assert store.add(b"k", a, now=3)  # refresh moves it to the front
    assert store.get(b"k", now=4) == [a, c, b]
    assert store.get(b"other", now=4) == []
    assert len(store) == 3


def test_providers_drop_connection_and_cap_addrs(make_providers: ProviderFactory) -> None:
    store = make_providers(max_addrs=2)
    peer = _peer(1, addrs=5)
    store.add(b"k", KadPeer(peer.peer_id, peer.addrs, ConnectionType.CONNECTED), now=0)
    (stored,) = store.get(b"k", now=0)
    assert stored == KadPeer(peer.peer_id, peer.addrs[:2])


def test_providers_expire(make_providers: ProviderFactory) -> None:
    store = make_providers(ttl=10)
    store.add(b"k", _peer(1), now=0)
    store.add(b"k", _peer(2), now=5)
    store.add(b"j", _peer(1), now=1)
    assert store.get(b"k", now=10) == [_peer(2)]
    assert len(store) == 2
    assert store.expire(now=15) == 2
    assert len(store) == 0
    assert store.get(b"j", now=15) == []


def test_providers_bounded_per_key(make_providers: ProviderFactory) -> None:
    store = make_providers(max_per_key=2, ttl=10)
    assert store.add(b"k", _peer(1), now=0)
    assert store.add(b"k", _peer(2), now=1)
    assert not store.add(b"k", _peer(3), now=2)
    assert store.add(b"k", _peer(1), now=3)  # a known provider may refresh
    assert store.add(b"k", _peer(3), now=11)  # peer 2 expired at 11
    assert store.get(b"k", now=11) == [_peer(3), _peer(1)]


def test_providers_bounded_keys(make_providers: ProviderFactory) -> None:
    store = make_providers(max_keys=2, ttl=10)
    assert store.add(b"a", _peer(1), now=0)
    assert store.add(b"b", _peer(1), now=5)
    assert not store.add(b"c", _peer(1), now=6)
    assert store.add(b"a", _peer(2), now=6)  # existing key, new provider: fine
    assert store.add(b"c", _peer(1), now=15)  # "b" expired at 15, which makes room
    assert store.get(b"a", now=15) == [_peer(2)]
    assert store.get(b"b", now=15) == []
    assert len(store) == 2


def test_memory_providers_close() -> None:
    store = MemoryProviderStore()
    store.add(b"k", _peer(1), now=0)
    store.close()
    assert len(store) == 0


def test_same_calls_same_state(make_providers: ProviderFactory) -> None:
    def run() -> list[list[KadPeer]]:
        store = make_providers(max_keys=3, max_per_key=2, ttl=7)
        for step in range(40):
            store.add(bytes([step % 5]), _peer(step % 4), now=step)
        return [store.get(bytes([k]), now=40) for k in range(5)]

    assert run() == run()
