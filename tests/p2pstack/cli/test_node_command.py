"""``p2pstack node`` start-up and shutdown: SIGTERM and SIGINT end it cleanly with status 0."""

from __future__ import annotations

import re
import signal

import pytest

from tests.p2pstack.cli.runner import NodeProcess, json_node


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_json_node_exits_0_on_signal(sig: signal.Signals) -> None:
    # The signal is sent the moment the first line is read: the handlers must already be set.
    with json_node("--listen", "/ip4/127.0.0.1/tcp/0") as (node, first):
        assert first["event"] == "listening"
        assert node.stop(sig) == 0
        assert node.stderr == ""
        events = node.events()
        assert events[0] == first
        assert events[-1] == {"event": "stopped"}


def test_human_node_output_and_ctrl_c() -> None:
    node = NodeProcess([])
    try:
        line = node.wait_line(lambda text: text.startswith("listening on "))
        peer = node.wait_line(lambda text: text.startswith("peer ID "))
        peer_id = peer.removeprefix("peer ID ")
        assert re.fullmatch(rf"listening on /ip4/127\.0\.0\.1/tcp/\d+/p2p/{peer_id}", line)
        assert node.stop(signal.SIGINT) == 0
        assert node.lines[-1] == "stopped"
        assert node.stderr == ""
    finally:
        node.kill()


def test_node_with_unusable_listen_address() -> None:
    node = NodeProcess(["--listen", "/ip4/127.0.0.1/udp/0"])
    try:
        status = node.proc.wait(30)
    finally:
        node.kill()
    assert status == 1
    assert node.lines == []
    lines = node.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("p2pstack: error: "), node.stderr
    assert "/ip4/127.0.0.1/udp/0" in lines[0]
