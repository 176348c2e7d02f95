from __future__ import annotations

import sys
import urllib.request

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from p2pstack.errors import ResourceLimitExceeded
from p2pstack.metrics import MetricsServer, NodeCollector, parse_listen_addr, start_metrics_server
from p2pstack.resources import LimitedResourceManager, Limits, ScopeLimit
from tests.p2pstack.hosts import ECHO, memory_hosts
from tests.p2pstack.resources.helpers import addr, peer


def scrape(server: MetricsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(server.url, timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def busy_manager() -> LimitedResourceManager:
    limits = Limits(
        peer=ScopeLimit(connections=1),
        transient=ScopeLimit(connections_inbound=1),
        protocol_peer=ScopeLimit(streams=10),
    )
    rm = LimitedResourceManager(limits)
    who = peer()
    conn = rm.open_connection("outbound", addr("10.0.0.1"))
    conn.set_peer(who)
    stream = conn.open_stream("inbound")
    stream.set_protocol("/ipfs/ping/1.0.0")
    stream.reserve_memory(1000)
    with pytest.raises(ResourceLimitExceeded):
        rm.open_connection("outbound", addr("10.0.0.2")).set_peer(who)
    rm.open_connection("inbound", addr("127.0.0.1"), on_evict=lambda: None)
    rm.open_connection("inbound", addr("127.0.0.1"), on_evict=lambda: None)
    return rm


def test_scrape_resource_metrics() -> None:
    with start_metrics_server("127.0.0.1:0", resource_manager=busy_manager()) as server:
        assert server.port > 0
        samples = scrape(server)
    conns = "p2pstack_resource_connections"
    assert samples[(conns, (("direction", "outbound"), ("scope", "peer")))] == 1
    assert samples[(conns, (("direction", "inbound"), ("scope", "transient")))] == 1
    assert samples[(conns, (("direction", "outbound"), ("scope", "system")))] == 2
    assert samples[("p2pstack_resource_memory_bytes", (("scope", "system"),))] == 1000
    ping = (("direction", "inbound"), ("protocol", "/ipfs/ping/1.0.0"))
    assert samples[("p2pstack_resource_protocol_streams", ping)] == 1
    refused = (("resource", "connections"), ("scope", "peer"))
    assert samples[("p2pstack_resource_refusals_total", refused)] == 1
    assert samples[("p2pstack_resource_evictions_total", ())] == 1
    assert samples[("p2pstack_resource_pending_upgrades", ())] == 1
    assert samples[("p2pstack_resource_peers", ())] == 1


def test_close_releases_the_port() -> None:
    server = start_metrics_server("127.0.0.1:0", resource_manager=LimitedResourceManager())
    port = server.port
    server.close()
    server.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url, timeout=5)
    start_metrics_server(f"127.0.0.1:{port}").close()  # the port is free again


@pytest.mark.anyio
async def test_scrape_host_statistics() -> None:
    async with memory_hosts(2) as (a, b):
        with anyio.fail_after(10):
            await b.connect(a.addrs[0])
            stream = await b.new_stream(a.peer_id, [ECHO])
            await stream.send(b"x")
            assert await stream.receive() == b"x"  # a's handler runs: the stream is counted
            with start_metrics_server("127.0.0.1:0", host=a) as server:
                samples = await anyio.to_thread.run_sync(scrape, server)
            await stream.aclose()
    assert samples[("p2pstack_host_connections", ())] == 1
    assert samples[("p2pstack_host_listeners", ())] == 1
    # The host's own resource manager is exported with it.
    assert samples[("p2pstack_resource_peers", ())] == 1
    inbound = (("direction", "inbound"), ("protocol", ECHO))
    assert samples[("p2pstack_resource_protocol_streams", inbound)] == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9100", ("127.0.0.1", 9100)),
        ("[::1]:0", ("::1", 0)),
        (":8080", ("0.0.0.0", 8080)),
    ],
)
def test_parse_listen_addr(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen_addr(text) == expected


@pytest.mark.parametrize("bad", ["localhost", "1.2.3.4:http", "1.2.3.4:70000"])
def test_parse_listen_addr_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        parse_listen_addr(bad)


def test_missing_prometheus_client_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match=r"pip install 'p2pstack\[metrics\]'"):
        start_metrics_server("127.0.0.1:0")
    with pytest.raises(ImportError):
        NodeCollector()
