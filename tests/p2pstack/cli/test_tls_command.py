"""``--security tls`` on ``p2pstack node`` and the client commands."""

from __future__ import annotations

import json
from pathlib import Path

from tests.p2pstack.cli.runner import json_node, run_cli


def test_node_and_clients_over_tls(client_key: tuple[Path, str]) -> None:
    key_path, client_id = client_key
    with json_node("--security", "tls", "--security", "noise") as (node, first):
        addrs = first["addrs"]
        assert isinstance(addrs, list)
        addr = str(addrs[0])
        ping = run_cli(
            "ping", addr, "-c", "2", "--json", "--security", "tls", "--key", str(key_path)
        )
        assert (ping.returncode, ping.stderr) == (0, "")
        assert json.loads(ping.stdout.splitlines()[-1])["ok"] == 2
        event = node.wait_event(
            lambda e: e.get("event") == "connected" and e.get("peer_id") == client_id
        )
        # The muxer came with the TLS handshake (ALPN), the node's first choice.
        assert (event["security"], event["muxer"]) == ("/tls/1.0.0", "/yamux/1.0.0")
        perf = run_cli("perf", addr, "--upload", "1MiB", "--download", "1MiB", "--security", "tls")
        assert (perf.returncode, perf.stderr) == (0, "")
        assert "1,048,576 bytes" in perf.stdout
        # The node also still speaks Noise, its second choice.
        noise = run_cli("ping", addr, "-c", "1")
        assert (noise.returncode, noise.stderr) == (0, "")
