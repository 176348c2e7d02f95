"""``p2pstack node`` served to ``ping``, ``identify`` and ``perf`` subprocesses, in JSON and text
(README, "The command line")."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.p2pstack.cli.conftest import RunningNode
from tests.p2pstack.cli.runner import run_cli


def _json_lines(stdout: str) -> list[dict[str, object]]:
    parsed = [json.loads(line) for line in stdout.splitlines()]
    assert all(isinstance(p, dict) for p in parsed), stdout
    return parsed


def _is(wanted: dict[str, object]) -> Callable[[dict[str, object]], bool]:
    """A predicate: the event has every field of ``wanted`` with that value."""
    return lambda event: wanted.items() <= event.items()


def _connection_events(
    node: RunningNode, peer_id: str, security: str, muxer: str
) -> tuple[dict[str, object], dict[str, object]]:
    """The node's ``connected`` and ``disconnected`` lines for ``peer_id``."""
    events = []
    for name in ("connected", "disconnected"):
        event = node.process.wait_event(_is({"event": name, "peer_id": peer_id}))
        assert event["direction"] == "inbound"
        assert (event["security"], event["muxer"]) == (security, muxer)
        assert isinstance(event["addr"], str) and event["addr"].startswith("/ip4/127.0.0.1/tcp/")
        events.append(event)
    return events[0], events[1]


def test_listening_line(node: RunningNode) -> None:
    first = node.process.events()[0]
    assert set(first) == {"event", "peer_id", "addrs"}
    assert first["event"] == "listening"
    # ``node --key`` runs as the key file's peer.
    assert node.peer_id == node.key_peer_id
    assert isinstance(first["addrs"], list)
    for addr in first["addrs"]:
        assert re.fullmatch(rf"/ip4/127\.0\.0\.1/tcp/[1-9]\d*/p2p/{node.peer_id}", addr), addr


def test_ping_json_and_connection_events(node: RunningNode, client_key: tuple[Path, str]) -> None:
    key_path, client_id = client_key
    result = run_cli("ping", node.addr, "--count", "3", "--json", "--key", str(key_path))
    assert (result.returncode, result.stderr) == (0, "")
    lines = _json_lines(result.stdout)
    pings, done = lines[:-1], lines[-1]
    assert [p["event"] for p in pings] == ["ping"] * 3
    assert [p["seq"] for p in pings] == [0, 1, 2]
    for p in pings:
        rtt = p["rtt_ms"]
        assert isinstance(rtt, float) and rtt > 0
    assert done["event"] == "done"
    assert (done["peer_id"], done["count"], done["ok"]) == (node.peer_id, 3, 3)
    # The node reported the client arriving and, once the client exited, leaving.
    _connection_events(node, client_id, "/noise", "/yamux/1.0.0")


def test_identify_json(node: RunningNode) -> None:
    result = run_cli("identify", node.addr, "--json")
    assert (result.returncode, result.stderr) == (0, "")
    (info,) = _json_lines(result.stdout)
    assert info["peer_id"] == node.peer_id
    agent = info["agent_version"]
    assert isinstance(agent, str) and agent.startswith("p2pstack/")
    protocols = info["protocols"]
    assert isinstance(protocols, list)
    assert {"/ipfs/ping/1.0.0", "/ipfs/id/1.0.0", "/perf/1.0.0"} <= set(protocols)
    observed = info["observed_addr"]
    assert isinstance(observed, str) and observed.startswith("/ip4/127.0.0.1/tcp/")
    listen_addrs = info["listen_addrs"]
    assert isinstance(listen_addrs, list)
    assert node.addr.split("/p2p/")[0] in listen_addrs


def test_perf_json(node: RunningNode) -> None:
    result = run_cli("perf", node.addr, "--upload", "1MiB", "--download", "2MiB", "--json")
    assert (result.returncode, result.stderr) == (0, "")
    (report,) = _json_lines(result.stdout)
    assert (report["upload_bytes"], report["download_bytes"]) == (1 << 20, 2 << 20)
    for field in ("seconds", "upload_mbps", "download_mbps"):
        value = report[field]
        assert isinstance(value, float) and value > 0, report


def test_client_chooses_mplex(node: RunningNode, client_key: tuple[Path, str]) -> None:
    key_path, client_id = client_key
    result = run_cli("ping", node.addr, "-c", "1", "--muxer", "mplex", "--key", str(key_path))
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    _connection_events(node, client_id, "/noise", "/mplex/6.7.0")


def test_plaintext_and_mplex_on_both_sides(
    plain_node: RunningNode, client_key: tuple[Path, str]
) -> None:
    key_path, client_id = client_key
    stack = ["--security", "plaintext", "--muxer", "mplex"]
    result = run_cli("ping", plain_node.addr, "-c", "2", "--json", "--key", str(key_path), *stack)
    assert (result.returncode, result.stderr) == (0, "")
    assert _json_lines(result.stdout)[-1]["ok"] == 2
    _connection_events(plain_node, client_id, "/plaintext/2.0.0", "/mplex/6.7.0")
    perf = run_cli("perf", plain_node.addr, "--upload", "64KiB", "--download", "10KB", *stack)
    assert (perf.returncode, perf.stderr) == (0, "")
    assert "65,536 bytes" in perf.stdout and "10,000 bytes" in perf.stdout


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["ping", "-c", "2"], [r"^ping 0: \d+\.\d+ ms$", r"^ping 1: ", r"^2/2 pings succeeded"]),
        (
            ["identify"],
            [r"^peer_id\s+{peer}$", r"^agent_version\s+p2pstack/", r"^protocols\s+.*/perf/1\.0\.0"],
        ),
        (
            ["perf", "--upload", "1MiB", "--download", "64KiB"],
            [r"^upload\s+1,048,576 bytes .* Mbit/s$", r"^download\s+65,536 bytes .* Mbit/s$"],
        ),
    ],
    ids=["ping", "identify", "perf"],
)
def test_human_output(node: RunningNode, command: list[str], expected: list[str]) -> None:
    result = run_cli(command[0], node.addr, *command[1:])
    assert (result.returncode, result.stderr) == (0, "")
    assert not result.stdout.lstrip().startswith("{")
    for pattern in expected:
        regex = re.compile(pattern.format(peer=node.peer_id), re.MULTILINE)
        assert regex.search(result.stdout), f"{pattern!r} not in:\n{result.stdout}"
