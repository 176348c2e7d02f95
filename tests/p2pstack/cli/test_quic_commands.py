"""``p2pstack node`` listening on QUIC-v1 and TCP at once, served to ``ping``, ``identify`` and
``perf`` subprocesses over quic-v1 addresses."""

from __future__ import annotations

import json
import re
import signal

from tests.p2pstack.cli.runner import json_node, run_cli

QUIC = "/ip4/127.0.0.1/udp/0/quic-v1"
TCP = "/ip4/127.0.0.1/tcp/0"


def test_node_on_quic_and_tcp_serves_quic_clients() -> None:
    with json_node("--listen", QUIC, "--listen", TCP) as (node, first):
        assert first["event"] == "listening"
        addrs = first["addrs"]
        assert isinstance(addrs, list) and len(addrs) == 2
        quic = next(a for a in addrs if "/quic-v1/" in a)
        assert re.fullmatch(r"/ip4/127\.0\.0\.1/udp/[1-9]\d*/quic-v1/p2p/12D3Koo\w+", quic)
        assert any("/tcp/" in a for a in addrs)

        pinged = run_cli("ping", quic, "--count", "2", "--json")
        assert (pinged.returncode, pinged.stderr) == (0, "")
        assert [json.loads(line)["event"] for line in pinged.stdout.splitlines()][:2] == [
            "ping",
            "ping",
        ]
        connected = node.wait_event(lambda e: e.get("event") == "connected")
        assert connected["muxer"] == "quic"
        assert str(connected["addr"]).startswith("/ip4/127.0.0.1/udp/")

        identified = run_cli("identify", quic, "--json")
        assert identified.returncode == 0, identified.stderr
        info = json.loads(identified.stdout.splitlines()[-1])
        assert any("/quic-v1" in a for a in info["listen_addrs"])

        perf = run_cli("perf", quic, "--upload", "1000000", "--download", "1000000")
        assert perf.returncode == 0, perf.stderr
        assert node.stop(signal.SIGTERM) == 0
