"""The Kad service between real in-process hosts on the memory transport."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from p2pstack.builder import open_host
from p2pstack.events import PeerFailed
from p2pstack.host import Host
from p2pstack.identity import PeerId
from protocols.identify import Identify
from protocols.kad import (
    Kad,
    KadError,
    KadPeer,
    KadPeerRemoved,
    NotFound,
    Record,
    RecordValidationError,
)
from protocols.kad._cid import cid_to_key
from protocols.kad._validation import Validators
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

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


@pytest.mark.anyio
async def test_put_on_one_host_get_on_another() -> None:
    async with kad_network(2) as (a, b):
        with anyio.fail_after(20):
            stored = await kad(a).put_value(b"/test/hello", b"world")
            assert stored == 1
            assert await kad(b).get_value(b"/test/hello") == b"world"
        assert b.peer_id in kad(a).routing_table
        assert a.peer_id in kad(b).routing_table


@pytest.mark.anyio
async def test_values_put_anywhere_are_read_everywhere_in_twelve_nodes() -> None:
    async with kad_network(12) as hosts:
        with anyio.fail_after(60):
            for i, host in enumerate(hosts[::4]):
                assert await kad(host).put_value(f"/test/k{i}".encode(), f"v{i}".encode()) >= 5
            for host in hosts:
                assert len(kad(host).routing_table) >= 5
                for i in range(3):
                    value = await kad(host).get_value(f"/test/k{i}".encode(), quorum=2)
                    assert value == f"v{i}".encode()
        stats = kad(hosts[0]).statistics()
        assert stats.inbound_requests > 0 and stats.lookups > 0 and stats.inbound_bad == 0


class Versioned:
    """``/ver/`` values are decimal version numbers; the highest wins."""

    def validate(self, key: bytes, value: bytes) -> None:
        if not value.isdigit():
            raise RecordValidationError("not a version number")

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        return max(range(len(values)), key=lambda i: int(values[i]))


def versioned_kad() -> Kad:
    return Kad(TEST_CONFIG, validators=Validators({"ver": Versioned()}))


@pytest.mark.anyio
async def test_get_value_selects_the_best_and_corrects_outdated_peers() -> None:
    async with kad_network(4, make=versioned_kad) as hosts:
        with anyio.fail_after(30):
            assert await kad(hosts[0]).put_value(b"/ver/x", b"1") == 3
            kad(hosts[1]).records.put(Record(b"/ver/x", b"2"), anyio.current_time())
            with pytest.raises(RecordValidationError):
                await kad(hosts[0]).put_value(b"/ver/x", b"two")
            assert await kad(hosts[2]).get_value(b"/ver/x", quorum=10) == b"2"
        for host in hosts:
            record = kad(host).records.get(b"/ver/x", anyio.current_time())
            assert record is not None and record.value == b"2", host


@pytest.mark.anyio
async def test_invalid_values_in_answers_are_ignored_and_counted() -> None:
    async with kad_network(3, make=versioned_kad) as hosts:
        with anyio.fail_after(30):
            await kad(hosts[0]).put_value(b"/ver/y", b"5")
            kad(hosts[1]).records.put(Record(b"/ver/y", b"garbage"), anyio.current_time())
            assert await kad(hosts[2]).get_value(b"/ver/y", quorum=10) == b"5"
        assert kad(hosts[2]).statistics().bad_values == 1


@pytest.mark.anyio
async def test_get_value_of_a_missing_key_is_not_found_and_unknown_namespace_is_rejected() -> None:
    async with kad_network(3) as hosts:
        with anyio.fail_after(20):
            with pytest.raises(NotFound):
                await kad(hosts[1]).get_value(b"/test/missing")
            with pytest.raises(RecordValidationError):
                await kad(hosts[1]).put_value(b"/nope/x", b"y")
            with pytest.raises(RecordValidationError):
                await kad(hosts[1]).get_value(b"/nope/x")


@pytest.mark.anyio
async def test_provide_and_find_providers_with_addresses_in_the_peerstore() -> None:
    key = cid_to_key(CID)
    async with kad_network(8) as hosts:
        provider, seeker = hosts[3], hosts[6]
        with anyio.fail_after(30):
            assert await kad(provider).provide(key) >= 5
            found = [p async for p in kad(seeker).find_providers(key)]
        assert [p.peer_id for p in found] == [provider.peer_id]
        assert found[0].addrs
        assert set(found[0].addrs) <= set(seeker.peerstore.addrs(provider.peer_id))


@pytest.mark.anyio
async def test_find_providers_stops_at_the_limit() -> None:
    key = cid_to_key(CID)
    async with kad_network(6) as hosts:
        with anyio.fail_after(30):
            for host in hosts[1:4]:
                await kad(host).provide(key)
            found = [p async for p in kad(hosts[5]).find_providers(key, limit=2)]
            assert len(found) == 2
            everyone = [p async for p in kad(hosts[5]).find_providers(key)]
        assert {p.peer_id for p in everyone} == {h.peer_id for h in hosts[1:4]}


@pytest.mark.anyio
async def test_find_peer_of_a_peer_only_a_third_node_knows() -> None:
    net = MemoryNetwork()
    async with (
        open_kad_host(net) as a,
        open_kad_host(net) as middle,
        open_kad_host(net) as c,
    ):
        with anyio.fail_after(20):
            await connect_until_in_table(a, middle)
            await connect_until_in_table(c, middle)
            assert not a.connections(c.peer_id)
            found = await kad(a).find_peer(c.peer_id)
            assert isinstance(found, KadPeer) and found.peer_id == c.peer_id
            assert set(c.listen_addrs) <= set(found.addrs)
            with pytest.raises(NotFound):
                await kad(a).find_peer(
                    PeerId.from_string("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA")
                )


@pytest.mark.anyio
async def test_the_dialer_finds_unknown_peers_through_the_dht() -> None:
    net = MemoryNetwork()
    async with (
        open_kad_host(net) as a,
        open_kad_host(net) as middle,
        open_kad_host(net) as c,
    ):
        with anyio.fail_after(20):
            await connect_until_in_table(a, middle)
            await connect_until_in_table(c, middle)
            conn = await a.dial_peer(c.peer_id)
        assert conn.remote_peer == c.peer_id


@pytest.mark.anyio
async def test_get_closest_peers_reports_the_lookup() -> None:
    async with kad_network(10) as hosts:
        with anyio.fail_after(20):
            result = await kad(hosts[9]).get_closest_peers(b"some key")
        assert 1 <= len(result.closest) <= TEST_CONFIG.k
        assert result.hops >= 1 and result.queried >= len(result.closest)
        assert hosts[9].peer_id not in {p.peer_id for p in result.closest}


@pytest.mark.anyio
async def test_bootstrap_with_an_unreachable_peer_only_fails() -> None:
    net = MemoryNetwork()
    async with open_kad_host(net) as a:
        with anyio.fail_after(20), pytest.raises(Exception, match="bootstrap"):
            await kad(a).bootstrap(
                ["/memory/999/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"]
            )


@pytest.mark.anyio
async def test_provide_without_a_listen_address_and_a_zero_limit_are_refused() -> None:
    net = MemoryNetwork()
    async with (
        open_kad_host(net) as server,
        open_host(
            transports=[MemoryTransport(net)],
            security=[Plaintext()],
            muxers=[Yamux()],
            services=[Identify(), Kad(TEST_CONFIG)],
        ) as unlistening,
    ):
        with anyio.fail_after(10):
            await kad(unlistening).bootstrap([server.addrs[0]])
            with pytest.raises(KadError, match="listen address"):
                await kad(unlistening).provide(cid_to_key(CID))
            with pytest.raises(ValueError, match="limit"):
                async for _ in kad(unlistening).find_providers(cid_to_key(CID), limit=0):
                    pass


@pytest.mark.anyio
async def test_a_failed_peer_leaves_the_routing_table() -> None:
    async with kad_network(2) as (a, b):
        assert b.peer_id in kad(a).routing_table
        with a.events.subscribe(KadPeerRemoved) as removed:
            a.events.emit(PeerFailed(peer_id=b.peer_id, source="membership"))
            with anyio.fail_after(5):
                event = await removed.receive()
        assert event.peer_id == b.peer_id
        assert b.peer_id not in kad(a).routing_table


@pytest.mark.anyio
async def test_before_request_is_awaited_once_the_peer_is_connected() -> None:
    seen: list[tuple[PeerId, bool]] = []
    hosts: list[Host] = []

    async def before(peer: PeerId) -> None:
        seen.append((peer, bool(hosts[0].connections(peer))))

    net = MemoryNetwork()
    service = Kad(TEST_CONFIG, before_request=before)
    async with open_kad_host(net, service=service) as a, open_kad_host(net) as b:
        hosts.append(a)
        with anyio.fail_after(20):
            await kad(a).bootstrap([b.addrs[0]])
            assert await kad(b).put_value(b"/test/k", b"v") >= 0
            assert await kad(a).get_value(b"/test/k") == b"v"
        assert seen, "no request went through the hook"
        assert all(peer == b.peer_id and connected for peer, connected in seen)
