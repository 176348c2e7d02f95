"""``p2pstack node --autonat`` subprocesses on loopback (private-address policy switched on):
both nodes dial each other back and print their reachability as JSON; a node listening on
0.0.0.0 never advertises 0.0.0.0; bad options fail with one line."""

from __future__ import annotations

from tests.p2pstack.cli.runner import NodeProcess, json_node, run_cli

AUTONAT = ("--autonat", "--autonat-allow-private", "--autonat-confidence", "1")


def test_nodes_find_each_other_public() -> None:
    with json_node(*AUTONAT, "--listen", "/ip4/0.0.0.0/tcp/0") as (seed, info):
        addrs = [str(a) for a in info["addrs"]]  # type: ignore[attr-defined]  # JSON list
        assert addrs and all("/0.0.0.0/" not in a for a in addrs)
        target = next(a for a in addrs if "/ip4/127.0.0.1/" in a)
        other = NodeProcess(["--json", *AUTONAT, "--bootstrap", target])
        try:
            event = other.wait_event(lambda e: e["event"] == "reachability")
            assert event == {
                "event": "reachability",
                "reachability": "public",
                "previous": "unknown",
                "source": event["source"],
            }
            assert event["source"] in ("autonat", "autonat-v2")
            seed_event = seed.wait_event(lambda e: e["event"] == "reachability")
            assert seed_event["reachability"] == "public"
        finally:
            other.kill()


def test_bad_autonat_option() -> None:
    result = run_cli("node", "--autonat", "--autonat-confidence", "0")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "confidence" in result.stderr


def test_bad_observed_confirmations() -> None:
    result = run_cli("node", "--observed-confirmations", "0")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--observed-confirmations: observed addresses need 1 to 16" in result.stderr
