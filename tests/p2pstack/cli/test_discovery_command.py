"""``p2pstack node --bootstrap`` subprocesses on 127.0.0.1: the bootstrap list is dialed and
each discovery printed as ``peer:discovery``; the DHT's random walk discovers more peers; bad
values fail with one line. Every wait is bounded (``runner``)."""

from __future__ import annotations

import argparse

import pytest
from anyio.from_thread import start_blocking_portal

from p2pstack.roots.cli._discovery_args import node_wants_discovery, parse_nameserver
from p2pstack.roots.cli._parser import build_parser
from tests.p2pstack.cli.runner import assert_one_line_error, json_node, run_cli
from tests.protocols.discovery.dns_server import dns_server

#: Seconds for a discovery, a connection or a walk between nodes on a loaded machine.
WAIT = 30.0


def _addr(first: dict[str, object]) -> str:
    addrs = first["addrs"]
    assert isinstance(addrs, list) and addrs, first
    return str(addrs[0])


def test_bootstrap_peer_is_discovered_dialed_and_the_walk_finds_more() -> None:
    with (
        json_node("--dht", "server") as (_, first),
        json_node("--dht", "server", "--bootstrap", _addr(first)) as (second, second_first),
    ):
        second.wait_event(lambda e: e["event"] == "dht_bootstrapped", WAIT)
        options = ("--bootstrap", _addr(first), "--random-walk", "0.5", "--min-connections", "1")
        with json_node(*options) as (third, listening):
            assert listening["discovery"] == ["bootstrap", "dht"]
            found = third.wait_event(
                lambda e: e["event"] == "peer:discovery" and e["source"] == "bootstrap", WAIT
            )
            assert found == {
                "event": "peer:discovery",
                "peer_id": first["peer_id"],
                "addrs": [_addr(first).split("/p2p/")[0]],
                "source": "bootstrap",
            }
            third.wait_event(
                lambda e: e["event"] == "connected" and e["peer_id"] == first["peer_id"], WAIT
            )
            walked = third.wait_event(
                lambda e: (
                    e["event"] == "peer:discovery"
                    and e["source"] == "dht"
                    and e["peer_id"] == second_first["peer_id"]
                ),
                WAIT,
            )
            assert walked["addrs"] == [_addr(second_first).split("/p2p/")[0]]


def test_bootstrap_through_a_dnsaddr_name() -> None:
    zone: dict[str, list[str]] = {}
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(dns_server(zone)) as ((host, port), queries),
        json_node() as (_, first),
    ):
        zone["_dnsaddr.boot.test"] = [f"dnsaddr={_addr(first)}"]
        entry = f"/dnsaddr/boot.test/p2p/{first['peer_id']}"
        options = ("--bootstrap", entry, "--dns-server", f"{host}:{port}")
        with json_node(*options) as (node, _):
            found = node.wait_event(lambda e: e["event"] == "peer:discovery", WAIT)
            assert (found["peer_id"], found["source"]) == (first["peer_id"], "bootstrap")
            node.wait_event(
                lambda e: e["event"] == "connected" and e["peer_id"] == first["peer_id"], WAIT
            )
        assert "_dnsaddr.boot.test" in queries


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("/ip4/127.0.0.1/tcp/1", "/p2p/<peer-id>"),
        ("nonsense", "--bootstrap"),
        ("/dnsaddr/example.org/p2p/notapeer", "--bootstrap"),
        ("/dnsaddr/example.org/tcp/1", "only /p2p/"),
    ],
)
def test_bad_bootstrap_values_fail_with_one_line(value: str, fragment: str) -> None:
    assert_one_line_error(run_cli("node", "--bootstrap", value), fragment)


def test_discovery_options_parse() -> None:
    def parse(*argv: str) -> argparse.Namespace:
        return build_parser().parse_args(["node", *argv])

    assert not node_wants_discovery(parse())
    args = parse("--bootstrap", "/dnsaddr/example.org", "--min-connections", "0")
    assert node_wants_discovery(args)
    assert (args.min_connections, args.random_walk) == (0, 60.0)
    for bad in (["--min-connections", "-1"], ["--random-walk", "0"]):
        with pytest.raises(SystemExit):
            parse(*bad)


def test_dns_server_values() -> None:
    assert parse_nameserver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_nameserver("10.0.0.1") == ("10.0.0.1", 53)
    assert parse_nameserver("[::1]:5353") == ("::1", 5353)
    assert parse_nameserver("::1") == ("::1", 53)
    for bad in ("", ":53", "host:0", "host:99999", "host:x", "[::1", "[::1]5"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_nameserver(bad)
