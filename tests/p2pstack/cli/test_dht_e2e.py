"""``p2pstack node --dht server`` subprocesses on 127.0.0.1 driven by ``p2pstack dht``
subprocesses: put/get, provide/find-providers, find-peer, and the failure contract (one stderr
line, exit 1). Every wait is bounded (``runner``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import attrs
import pytest

from p2pstack.identity import Identity
from protocols.kad import key_to_cid
from tests.p2pstack.cli.runner import NodeProcess, assert_one_line_error, run_cli

#: Seconds any DHT client command gets (its --timeout; the subprocess gets a bit more).
TIMEOUT = "20"
ADDR = re.compile(r"/ip4/127\.0\.0\.1/tcp/[1-9]\d*(/p2p/\w+)?")


@attrs.frozen
class DhtNode:
    process: NodeProcess
    peer_id: str
    addr: str


@attrs.frozen
class Network:
    first: DhtNode
    second: DhtNode


def _start(*options: str) -> DhtNode:
    process = NodeProcess(["--json", "--dht", "server", "--dht-namespace", "test", *options])
    try:
        first = process.wait_event(lambda _: True)
        assert first["event"] == "listening" and first["dht"] == "server", first
        addrs = first["addrs"]
        assert isinstance(addrs, list) and addrs, first
        return DhtNode(process, str(first["peer_id"]), str(addrs[0]))
    except BaseException:
        process.kill()
        raise


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    """Two DHT servers; the second joined through the first, and each in the other's table."""
    first = _start()
    try:
        second = _start("--bootstrap", first.addr)
        try:
            joined = second.process.wait_event(lambda e: str(e["event"]).startswith("dht_boot"))
            assert joined["event"] == "dht_bootstrapped", joined
            assert isinstance(joined["routing_table"], int) and joined["routing_table"] >= 1
            for node, other in ((first, second), (second, first)):
                added = {"event": "dht_peer_added", "peer_id": other.peer_id}
                node.process.wait_event(added.__eq__)
            yield Network(first, second)
        finally:
            second.process.kill()
    finally:
        first.process.kill()


def _dht(*args: str) -> list[dict[str, object]]:
    """Run ``p2pstack dht ARGS --json --timeout T``; return its events (exit 0, stderr empty)."""
    result = run_cli("dht", *args, "--json", "--timeout", TIMEOUT, timeout=float(TIMEOUT) + 15)
    assert (result.returncode, result.stderr) == (0, ""), result
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(isinstance(e, dict) for e in events), result.stdout
    return events


def test_put_on_one_get_from_the_other(network: Network) -> None:
    ns = ("--dht-namespace", "test")
    (put,) = _dht("put", "/test/greeting", "hello, DHT", "--bootstrap", network.first.addr, *ns)
    assert set(put) == {"event", "key", "stored_at", "peer_id"}
    assert (put["event"], put["key"]) == ("put", "/test/greeting")
    assert put["stored_at"] in (1, 2)
    assert isinstance(put["peer_id"], str)
    assert put["peer_id"] not in (network.first.peer_id, network.second.peer_id)
    (value,) = _dht("get", "/test/greeting", "--bootstrap", network.second.addr, *ns)
    assert value == {
        "event": "value",
        "key": "/test/greeting",
        "value": "hello, DHT",
        "value_b64": "aGVsbG8sIERIVA==",
    }


def test_readable_put_and_get(network: Network) -> None:
    common = ("--bootstrap", network.first.addr, "--dht-namespace", "test", "--timeout", TIMEOUT)
    put = run_cli("dht", "put", "/test/readable", "plain text", *common)
    assert (put.returncode, put.stderr) == (0, ""), put
    assert re.fullmatch(r"stored /test/readable at [12] peers?\n", put.stdout), put.stdout
    get = run_cli("dht", "get", "/test/readable", *common)
    assert (get.returncode, get.stdout, get.stderr) == (0, "plain text\n", "")


def test_get_not_found_exits_1(network: Network) -> None:
    result = run_cli(
        "dht",
        "get",
        "/test/nobody-put-this",
        "--bootstrap",
        network.first.addr,
        "--dht-namespace",
        "test",
        "--json",
        "--timeout",
        TIMEOUT,
        timeout=float(TIMEOUT) + 15,
    )
    assert_one_line_error(result, "no value found for /test/nobody-put-this")


def test_provide_then_find_providers(network: Network) -> None:
    cid = key_to_cid(b"\x12\x20" + bytes(range(32)))
    (provided,) = _dht("provide", cid, "--bootstrap", network.first.addr)
    assert set(provided) == {"event", "cid", "stored_at", "peer_id"}
    assert (provided["event"], provided["cid"]) == ("provide", cid)
    assert provided["stored_at"] in (1, 2)
    found = _dht("find-providers", cid, "--bootstrap", network.second.addr)
    assert found[-1] == {"event": "done", "count": 1}
    (provider,) = found[:-1]
    assert (provider["event"], provider["peer_id"]) == ("provider", provided["peer_id"])
    addrs = provider["addrs"]
    assert isinstance(addrs, list) and addrs, provider  # js drops provider records without
    assert all(ADDR.fullmatch(a) for a in addrs), addrs


def test_find_providers_of_an_unknown_cid(network: Network) -> None:
    cid = key_to_cid(b"\x12\x20" + bytes(32))
    assert _dht("find-providers", cid, "--bootstrap", network.first.addr) == [
        {"event": "done", "count": 0}
    ]


def test_find_peer(network: Network) -> None:
    (peer,) = _dht("find-peer", network.second.peer_id, "--bootstrap", network.first.addr)
    assert (peer["event"], peer["peer_id"]) == ("peer", network.second.peer_id)
    addrs = peer["addrs"]
    assert isinstance(addrs, list)
    assert network.second.addr.split("/p2p/")[0] in [a.split("/p2p/")[0] for a in addrs]


def test_find_peer_not_found_exits_1(network: Network) -> None:
    stranger = str(Identity.generate().peer_id)
    result = run_cli(
        "dht",
        "find-peer",
        stranger,
        "--bootstrap",
        network.first.addr,
        "--timeout",
        TIMEOUT,
        timeout=float(TIMEOUT) + 15,
    )
    assert_one_line_error(result, f"peer {stranger} not found")


def test_reader_validates_what_it_fetches(network: Network) -> None:
    (put,) = _dht(
        "put", "/test/checked", "v", "--bootstrap", network.first.addr, "--dht-namespace", "test"
    )
    assert put["event"] == "put"
    # Without --dht-namespace test, /test/ has no validator here: the value is refused.
    result = run_cli(
        "dht", "get", "/test/checked", "--bootstrap", network.first.addr, "--timeout", TIMEOUT
    )
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""


def test_client_mode_node_joins_but_stays_out_of_tables(network: Network) -> None:
    process = NodeProcess(["--json", "--dht", "client", "--bootstrap", network.first.addr])
    try:
        first = process.wait_event(lambda _: True)
        assert (first["event"], first["dht"]) == ("listening", "client")
        joined = process.wait_event(lambda e: str(e["event"]).startswith("dht_boot"))
        assert joined["event"] == "dht_bootstrapped", joined
        # It does not serve the DHT, so no server lists it: nobody can find it through the DHT.
        client_id = str(first["peer_id"])
        result = run_cli(
            "dht", "find-peer", client_id, "--bootstrap", network.first.addr, "--timeout", TIMEOUT
        )
        assert_one_line_error(result, f"peer {client_id} not found")
    finally:
        process.kill()


def test_bootstrap_peer_without_the_dht_protocol(network: Network) -> None:
    result = run_cli(
        "dht",
        "get",
        "/test/greeting",
        "--bootstrap",
        network.first.addr,
        "--dht-protocol",
        "/other/kad/1.0.0",
        "--timeout",
        TIMEOUT,
    )
    assert_one_line_error(result, "no DHT server (/other/kad/1.0.0) among the bootstrap peers")


def test_node_whose_bootstrap_fails_keeps_serving() -> None:
    unreachable = f"/ip4/127.0.0.1/tcp/1/p2p/{Identity.generate().peer_id}"
    process = NodeProcess(["--json", "--bootstrap", unreachable])
    try:
        first = process.wait_event(lambda _: True)
        assert (first["event"], first["dht"]) == ("listening", "server")
        failed = process.wait_event(lambda e: str(e["event"]).startswith("dht_boot"))
        assert failed["event"] == "dht_bootstrap_failed", failed
        assert "could not connect to /ip4/127.0.0.1/tcp/1" in str(failed["error"])
        addrs = first["addrs"]
        assert isinstance(addrs, list)
        identify = run_cli("identify", str(addrs[0]), "--json")  # still serving
        assert identify.returncode == 0, identify
        assert "/ipfs/kad/1.0.0" in json.loads(identify.stdout)["protocols"]
        assert process.stop() == 0
    finally:
        process.kill()
