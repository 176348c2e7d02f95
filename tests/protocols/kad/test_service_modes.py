"""Kad service modes, routing-table upkeep (identify, liveness checks), timers and storage."""

from __future__ import annotations

import random
from collections import deque
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from multiaddr import Multiaddr

from p2pstack.builder import open_host
from p2pstack.errors import ProtocolNotSupported
from p2pstack.events import LocalAddrsChanged
from p2pstack.host import Stream
from p2pstack.identity import Identity
from p2pstack.interfaces import Service
from p2pstack.sim import run_virtual
from protocols.identify import Identify
from protocols.kad import (
    PROTOCOL_ID,
    Kad,
    KadConfig,
    KadMessage,
    KadModeChanged,
    KadPeerAdded,
    KadPeerRemoved,
    MessageType,
    Record,
    _service,
    peer_key,
)
from protocols.kad._cid import cid_to_key
from protocols.kad._client import read_message
from protocols.kad._config import has_public_addr
from protocols.kad._keyspace import bucket_index
from protocols.kad._maintenance import MAX_REPUBLISHED, Maintenance, remember
from protocols.kad._ping import is_alive
from protocols.kad._table import RoutingTable
from protocols.kad._wire import KadMessageDecoder, frame
from protocols.ping import Ping
from tests.protocols.kad._network import (
    TEST_CONFIG,
    connect_until_in_table,
    kad,
    kad_network,
    open_kad_host,
)
from transports.memory import MemoryNetwork, MemoryTransport
from transports.plaintext import Plaintext
from transports.yamux import Yamux

KEY = cid_to_key("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
CLIENT = attrs.evolve(TEST_CONFIG, mode="client")


@pytest.mark.anyio
async def test_a_client_queries_but_serves_nothing_and_enters_no_table() -> None:
    net = MemoryNetwork()
    async with AsyncExitStack() as stack:
        servers = [await stack.enter_async_context(open_kad_host(net)) for _ in range(4)]
        client = await stack.enter_async_context(open_kad_host(net, CLIENT))
        with anyio.fail_after(30):
            for server in servers[1:]:
                await kad(server).bootstrap([servers[0].addrs[0]])
            assert await kad(client).bootstrap([servers[0].addrs[0]]) >= 3
            assert await kad(client).put_value(b"/test/c", b"from a client") >= 3
            assert await kad(servers[2]).get_value(b"/test/c") == b"from a client"
            assert await kad(client).get_value(b"/test/c") == b"from a client"
            assert PROTOCOL_ID not in client.protocols
            with pytest.raises(ProtocolNotSupported):
                await servers[1].new_stream(client.peer_id, [PROTOCOL_ID])
        assert kad(client).mode == "client" and kad(client).statistics().mode == "client"
        assert kad(client).statistics().inbound_requests == 0
        for server in servers:
            assert client.peer_id not in kad(server).routing_table


@pytest.mark.anyio
async def test_auto_mode_is_a_client_without_a_public_address() -> None:
    async with open_kad_host(MemoryNetwork(), attrs.evolve(TEST_CONFIG, mode="auto")) as host:
        assert kad(host).mode == "client"
        assert PROTOCOL_ID not in host.protocols
    assert has_public_addr([Multiaddr("/ip4/8.8.8.8/tcp/4001")])
    assert has_public_addr([Multiaddr("/memory/1"), Multiaddr("/ip6/2001:4860::8888/tcp/1")])
    assert not has_public_addr(
        [Multiaddr("/ip4/127.0.0.1/tcp/1"), Multiaddr("/ip4/10.1.2.3/tcp/1")]
    )
    assert not has_public_addr([Multiaddr("/memory/1")])


@pytest.mark.anyio
async def test_auto_mode_serves_once_a_public_address_appears(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with open_kad_host(MemoryNetwork(), attrs.evolve(TEST_CONFIG, mode="auto")) as host:
        assert kad(host).mode == "client"
        monkeypatch.setattr(_service, "has_public_addr", lambda addrs: True)
        with host.events.subscribe(KadModeChanged) as changes:
            host.events.emit(LocalAddrsChanged(addrs=host.addrs))
            assert await changes.receive() == KadModeChanged("server")
            assert PROTOCOL_ID in host.protocols
            monkeypatch.setattr(_service, "has_public_addr", lambda addrs: False)
            host.events.emit(LocalAddrsChanged(addrs=host.addrs))
            assert await changes.receive() == KadModeChanged("client")
            assert PROTOCOL_ID not in host.protocols


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="mode"):
        KadConfig(mode="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="provider_republish"):
        KadConfig(provider_republish=10.0, provider_ttl=5.0)
    with pytest.raises(ValueError):
        KadConfig(k=0)
    assert KadConfig(bootstrap=["/memory/1"]).bootstrap == (Multiaddr("/memory/1"),)
    with pytest.raises(ValueError, match="record_republish"):
        KadConfig(record_republish=10.0, record_ttl=5.0)
    with pytest.raises(ValueError):
        KadConfig(record_republish=0.0)


def test_record_republish_none_never_fires() -> None:
    """``record_republish=None`` switches record republish off; the other jobs still run."""
    local = Identity.generate().peer_id
    table = RoutingTable(local, now=0.0, rng=random.Random(1))
    config = KadConfig(record_republish=None, provider_republish=600.0, provider_ttl=1200.0)
    jobs = Maintenance(table, config, now=0.0)
    fired: set[str] = set()
    now = 0.0
    for _ in range(5000):
        deadline = jobs.next_deadline()
        assert deadline is not None
        now = max(now, deadline)
        jobs.handle_timer(now)
        fired |= jobs.take_due()
        jobs.take_refresh()
        if now > 4 * 24 * 3600:
            break
    assert "providers" in fired and "expire" in fired
    assert "records" not in fired
    with_republish = Maintenance(table, KadConfig(record_republish=60.0), now=0.0)
    with_republish.handle_timer(61.0)
    assert "records" in with_republish.take_due()


@pytest.mark.anyio
async def test_a_peer_that_stops_serving_the_dht_leaves_the_table() -> None:
    net = MemoryNetwork()
    async with open_kad_host(net) as a, open_kad_host(net) as b:
        with anyio.fail_after(10):
            await connect_until_in_table(a, b)
            with a.events.subscribe(KadPeerRemoved) as removed:
                a.set_peer_protocols(b.peer_id, ["/ipfs/id/1.0.0"])
                event = await removed.receive()
        assert event.peer_id == b.peer_id and b.peer_id not in kad(a).routing_table


@pytest.mark.anyio
async def test_liveness_ping_answers() -> None:
    net = MemoryNetwork()
    async with (
        open_kad_host(net) as a,
        open_kad_host(net) as pinger,
        open_host(
            transports=[MemoryTransport(net)],
            security=[Plaintext()],
            muxers=[Yamux()],
            services=[Identify()],
            listen=["/memory/0"],
        ) as no_ping,
    ):
        with anyio.fail_after(10):
            await a.connect(pinger.addrs[0])
            await a.connect(no_ping.addrs[0])
            assert await is_alive(a, pinger.peer_id, timeout=5)
            assert await is_alive(a, no_ping.peer_id, timeout=5)  # answered "na": reachable
            unknown = Identity.generate().peer_id
            assert not await is_alive(a, unknown, timeout=5)


def _same_bucket_identities(local: Identity) -> tuple[Identity, Identity]:
    found: list[Identity] = []
    while len(found) < 2:
        candidate = Identity.generate()
        if bucket_index(peer_key(local.peer_id), peer_key(candidate.peer_id)) == 0:
            found.append(candidate)
    return found[0], found[1]


@pytest.mark.anyio
async def test_a_full_bucket_evicts_its_least_recently_seen_peer_when_its_ping_fails() -> None:
    config = attrs.evolve(TEST_CONFIG, k=1, liveness_timeout=0.5)
    local = Identity.generate()
    old, new = _same_bucket_identities(local)
    net = MemoryNetwork()

    async def mute_ping(stream: Stream) -> None:
        await anyio.sleep_forever()  # reachable, but its ping never answers: dead to a

    def host(identity: Identity, cfg: KadConfig, services: list[Service]) -> Any:
        return open_host(
            identity=identity,
            transports=[MemoryTransport(net)],
            security=[Plaintext()],
            muxers=[Yamux()],
            services=[Identify(), Kad(cfg), *services],
            listen=["/memory/0"],
        )

    async with (
        host(local, config, [Ping()]) as a,
        host(old, TEST_CONFIG, []) as b,
        host(new, TEST_CONFIG, [Ping()]) as c,
    ):
        b.set_stream_handler("/ipfs/ping/1.0.0", mute_ping)
        with anyio.fail_after(20):
            await connect_until_in_table(a, b)
            with a.events.subscribe(KadPeerAdded, KadPeerRemoved) as events:
                await c.connect(a.addrs[0])
                seen = {await events.receive(), await events.receive()}
        assert seen == {KadPeerRemoved(old.peer_id), KadPeerAdded(new.peer_id)}
        assert list(kad(a).routing_table.peers()) == [new.peer_id]
        stats = kad(a).statistics()
        assert stats.liveness_checks == 1 and stats.liveness_failures == 1


@pytest.mark.anyio
async def test_timers_refresh_and_republish_provider_records() -> None:
    config = attrs.evolve(
        TEST_CONFIG,
        refresh_interval=0.3,
        provider_ttl=1.0,
        provider_republish=0.4,
        provider_expiry_interval=0.2,
    )
    async with kad_network(3, config) as (a, b, c):
        with anyio.fail_after(20):
            await kad(a).provide(KEY)
            lookups = kad(a).statistics().lookups
            await anyio.sleep(2.5)  # several provider lifetimes (a timer test: time must pass)
            still = kad(b).providers.get(KEY, anyio.current_time())
            assert [p.peer_id for p in still] == [a.peer_id]
            assert kad(a).statistics().lookups >= lookups + 4
            found = [p.peer_id async for p in kad(c).find_providers(KEY)]
        assert found == [a.peer_id]


@pytest.mark.anyio
async def test_records_and_providers_survive_a_restart_with_sqlite(tmp_path: Path) -> None:
    config = attrs.evolve(TEST_CONFIG, storage=str(tmp_path / "dht.sqlite"))
    net = MemoryNetwork()
    async with open_kad_host(net) as other:
        with anyio.fail_after(20):
            async with open_kad_host(net, config) as persistent:
                await connect_until_in_table(other, persistent)
                assert await kad(other).put_value(b"/test/kept", b"value") == 1
                # ADD_PROVIDER has no answer: a GET_PROVIDERS after it on the same stream
                # (answered in order) shows it was handled.
                me = kad(other).peer_info(other.peer_id)
                stream = await other.new_stream(persistent.peer_id, [PROTOCOL_ID])
                await stream.send(
                    frame(KadMessage(type=MessageType.ADD_PROVIDER, key=KEY, provider_peers=(me,)))
                    + frame(KadMessage(type=MessageType.GET_PROVIDERS, key=KEY))
                )
                answer = await read_message(stream, KadMessageDecoder(), deque())
                assert [p.peer_id for p in answer.provider_peers] == [other.peer_id]
                await stream.aclose()
            async with open_kad_host(net, config) as again:
                assert kad(again).records.get(b"/test/kept", anyio.current_time()) is not None
                providers = kad(again).providers.get(KEY, anyio.current_time())
                assert [p.peer_id for p in providers] == [other.peer_id]


@pytest.mark.anyio
async def test_a_peer_listing_the_protocol_enters_the_table_only_after_answering() -> None:
    config = attrs.evolve(TEST_CONFIG, request_timeout=0.3)
    arrived = anyio.Event()

    async def hang(stream: Stream) -> None:
        arrived.set()
        await anyio.sleep_forever()

    net = MemoryNetwork()
    async with (
        open_kad_host(net, config) as a,
        open_kad_host(net, config) as b,
        open_host(
            transports=[MemoryTransport(net)],
            security=[Plaintext()],
            muxers=[Yamux()],
            services=[Identify()],
            listen=["/memory/0"],
        ) as mute,
    ):
        mute.set_stream_handler(PROTOCOL_ID, hang)
        with anyio.fail_after(10):
            await connect_until_in_table(a, b)  # each answered the other's lookup check
            with a.events.subscribe(KadPeerAdded) as added:
                await a.connect(mute.addrs[0])
                await arrived.wait()  # identify listed kad: a sent its lookup check
                with anyio.move_on_after(3 * config.request_timeout):
                    event = await added.receive()
                    pytest.fail(f"a peer that never answers entered the table: {event}")
        assert mute.peer_id not in kad(a).routing_table
        assert kad(a).statistics().outbound_timeouts >= 1


def test_republished_keys_are_bounded() -> None:
    republished: dict[bytes, None] = {}
    for i in range(MAX_REPUBLISHED + 5):
        remember(republished, str(i).encode(), None)
    remember(republished, b"10", None)  # refreshed: now the newest
    assert len(republished) == MAX_REPUBLISHED
    assert b"0" not in republished and b"5" in republished
    assert list(republished)[-1] == b"10"


def test_default_republish_and_expiry_over_four_days_of_virtual_time() -> None:
    hour = 3600.0
    # The default TTLs and republish intervals (48 h / 22 h providers, 36 h / 22 h records);
    # rare bucket refreshes keep the run short.
    config = attrs.evolve(TEST_CONFIG, refresh_interval=10 * hour)

    async def main() -> None:
        async with kad_network(3, config) as (a, b, c):
            await kad(a).provide(KEY)
            await kad(a).put_value(b"/test/kept", b"republished")
            kad(b).records.put(Record(b"/test/orphan", b"nobody"), anyio.current_time())
            kad(c).providers.add(KEY, kad(c).peer_info(c.peer_id), anyio.current_time())
            c_lookups = kad(c).statistics().lookups
            await anyio.sleep(100 * hour)
            now = anyio.current_time()
            assert [p.peer_id for p in kad(b).providers.get(KEY, now)] == [a.peer_id]
            kept = kad(b).records.get(b"/test/kept", now)
            assert kept is not None and kept.value == b"republished"
            assert kad(b).records.get(b"/test/orphan", now) is None  # 36 h TTL, never renewed
            assert kad(a).statistics().lookups >= 2 * 4  # ~4 republish rounds of each kind
            assert kad(c).statistics().lookups > c_lookups  # bucket refreshes
            # c's own entry (never provided, so never republished) is gone everywhere else.
            found = [p.peer_id async for p in kad(b).find_providers(KEY)]
            assert found == [a.peer_id]

    run_virtual(main)
