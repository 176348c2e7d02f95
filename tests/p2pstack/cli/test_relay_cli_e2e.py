"""Circuit relay v2 with three CLI processes: ``p2pstack node --relay-service`` relays,
``p2pstack node --relay <relay>`` listens through it, ``p2pstack ping <circuit addr>`` dials."""

from __future__ import annotations

import json

from tests.p2pstack.cli.runner import NodeProcess, json_node, run_cli


def test_cli_relay_listener_and_pinger() -> None:
    relay = NodeProcess(["--json", "--relay-service", "--relay-limit-duration", "60"])
    try:
        first = relay.wait_event(lambda _: True)
        assert first["event"] == "listening", first
        relay_addr = str(first["addrs"][0])  # type: ignore[index]  # JSON event fields are untyped
        with json_node("--relay", relay_addr) as (listener, listening):
            peer_id = str(listening["peer_id"])
            made = listener.wait_event(lambda e: e["event"] == "relay:reservation")
            assert made["state"] == "made"
            circuit = f"{relay_addr}/p2p-circuit/p2p/{peer_id}"
            assert circuit in listening["addrs"]  # type: ignore[operator]  # a JSON list
            accepted = relay.wait_event(lambda e: e["event"] == "relay:reservation")
            assert accepted["peer_id"] == peer_id and accepted["result"] == "accepted"
            result = run_cli("ping", circuit, "--count", "2", "--json")
            assert result.returncode == 0, result.stderr
            lines = [json.loads(line) for line in result.stdout.splitlines()]
            assert [line["seq"] for line in lines if line.get("event") == "ping"] == [0, 1]
            opened = relay.wait_event(
                lambda e: e["event"] == "relay:circuit" and e["result"] == "opened"
            )
            assert opened["target"] == peer_id
        assert relay.stop() == 0
    finally:
        relay.kill()
