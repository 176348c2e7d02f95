"""``p2pstack node --subscribe`` subprocesses driven by ``p2pstack pubsub sub|pub`` subprocesses
on 127.0.0.1: JSON and readable output, ``from`` as the original publisher through a
forwarding node, and the failure contract (one stderr line, exit 1). Every wait is bounded
(``runner``)."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from p2pstack.identity import Identity
from tests.p2pstack.cli.conftest import RunningNode
from tests.p2pstack.cli.runner import NodeProcess, assert_one_line_error, run_cli

TOPIC = "e2e-news"
TIMEOUT = "20"  # --timeout of each client command; the subprocess gets a bit more
CLI_TIMEOUT = float(TIMEOUT) + 15


@attrs.frozen
class PubsubNode:
    process: NodeProcess
    peer_id: str
    addr: str


def _start(*options: str) -> PubsubNode:
    process = NodeProcess(["--json", *options])
    try:
        first = process.wait_event(lambda _: True)
        assert first["event"] == "listening", first
        addrs = first["addrs"]
        assert isinstance(addrs, list)
        return PubsubNode(process, str(first["peer_id"]), str(addrs[0]))
    except BaseException:
        process.kill()
        raise


@pytest.fixture(scope="module")
def hub() -> Iterator[PubsubNode]:
    """A gossipsub node subscribed to TOPIC."""
    node = _start("--subscribe", TOPIC)
    try:
        first = node.process.events()[0]
        assert (first["pubsub"], first["topics"]) == ("gossipsub", [TOPIC])
        assert "dht" not in first  # --subscribe alone runs no DHT
        yield node
        assert node.process.stop() == 0
    finally:
        node.process.kill()


@pytest.fixture(scope="module")
def relay(hub: PubsubNode) -> Iterator[PubsubNode]:
    """A second gossipsub node on TOPIC, linked to the hub through --bootstrap."""
    node = _start("--subscribe", TOPIC, "--bootstrap", hub.addr)
    try:
        assert node.process.events()[0]["topics"] == [TOPIC]
        joined = node.process.wait_event(lambda e: str(e["event"]).startswith("pubsub_boot"))
        assert joined == {"event": "pubsub_bootstrapped", "peers": 1}
        for a, b in ((hub, node), (node, hub)):
            seen = {"event": "topic_peer_joined", "peer_id": b.peer_id, "topic": TOPIC}
            a.process.wait_event(seen.__eq__)
        yield node
    finally:
        node.process.kill()


def _key(tmp_path: Path) -> tuple[str, str]:
    identity = Identity.generate()
    path = tmp_path / "pub.key"
    identity.save(path)
    return str(path), str(identity.peer_id)


def _sub(*args: str) -> NodeProcess:
    return NodeProcess([TOPIC, "--timeout", TIMEOUT, *args], command=("pubsub", "sub"))


def test_pub_through_the_hub_reaches_subs_on_both_nodes(
    hub: PubsubNode, relay: PubsubNode, tmp_path: Path
) -> None:
    key, pub_id = _key(tmp_path)
    json_sub = _sub("--bootstrap", relay.addr, "--json", "--count", "2")
    text_sub = _sub("--bootstrap", hub.addr)  # runs until SIGTERM
    try:
        subscribed = json_sub.wait_event(lambda _: True, CLI_TIMEOUT)
        assert subscribed == {"event": "subscribed", "topic": TOPIC, "peers": 1}
        assert text_sub.wait_line(lambda _: True, CLI_TIMEOUT) == f"subscribed to {TOPIC} (1 peer)"
        common = ("--bootstrap", hub.addr, "--key", key, "--timeout", TIMEOUT)
        first = run_cli("pubsub", "pub", TOPIC, "one", *common, "--json", timeout=CLI_TIMEOUT)
        assert (first.returncode, first.stderr) == (0, ""), first
        published = json.loads(first.stdout)
        assert set(published) == {"event", "topic", "msg_id", "peers"}
        assert (published["event"], published["topic"], published["peers"]) == (
            "published",
            TOPIC,
            1,
        )
        assert re.fullmatch(r"[0-9a-f]+", published["msg_id"])
        second = run_cli("pubsub", "pub", TOPIC, "two words", *common, timeout=CLI_TIMEOUT)
        assert (second.returncode, second.stderr) == (0, ""), second
        assert re.fullmatch(rf"published [0-9a-f]+ on {TOPIC} to 1 peer\n", second.stdout)
        assert json_sub.proc.wait(CLI_TIMEOUT) == 0
        messages = json_sub.events()[1:]
        text_sub.wait_line(lambda line: line.endswith("two words"), CLI_TIMEOUT)
        assert text_sub.stop(signal.SIGTERM) == 0
    finally:
        json_sub.kill()
        text_sub.kill()
    # Forwarded by the hub and the relay, yet ``from`` is the publisher, once each.
    assert [(m["event"], m["from"], m["data"]) for m in messages] == [
        ("message", pub_id, "one"),
        ("message", pub_id, "two words"),
    ]
    assert messages[0]["msg_id"] == published["msg_id"]
    assert messages[0]["data_b64"] == "b25l"
    assert text_sub.lines[1:] == [f"[{TOPIC}] {pub_id}: one", f"[{TOPIC}] {pub_id}: two words"]
    for node in (hub, relay):
        seen = [e for e in node.process.events() if e["event"] == "message"]
        assert [(m["from"], m["data"]) for m in seen[-2:]] == [
            (pub_id, "one"),
            (pub_id, "two words"),
        ]


def test_pub_waits_for_subscribers_within_the_timeout(hub: PubsubNode) -> None:
    result = run_cli(
        "pubsub", "pub", TOPIC, "x", "--bootstrap", hub.addr, "--wait-peers", "3", "--timeout", "2"
    )
    assert_one_line_error(result, f"timed out after 2 s waiting for 3 subscribers of {TOPIC}")


def test_sub_through_a_node_without_pubsub(node: RunningNode) -> None:
    result = run_cli("pubsub", "sub", TOPIC, "--bootstrap", node.addr, "--timeout", TIMEOUT)
    assert_one_line_error(result, "no gossipsub peer among the bootstrap peers")


@pytest.mark.parametrize(
    ("bootstrap", "fragment"),
    [
        (f"/ip4/127.0.0.1/tcp/1/p2p/{Identity.generate().peer_id}", "could not connect to"),
        ("/ip4/127.0.0.1/tcp/1", "the address must end in /p2p/<peer-id>"),
    ],
)
def test_unreachable_or_bad_bootstrap(bootstrap: str, fragment: str) -> None:
    result = run_cli("pubsub", "pub", TOPIC, "x", "--bootstrap", bootstrap, "--timeout", TIMEOUT)
    assert_one_line_error(result, fragment)


def test_node_whose_pubsub_bootstrap_fails_keeps_running() -> None:
    unreachable = f"/ip4/127.0.0.1/tcp/1/p2p/{Identity.generate().peer_id}"
    node = _start("--pubsub", "floodsub", "--bootstrap", unreachable)
    try:
        first = node.process.events()[0]
        assert (first["pubsub"], first["topics"]) == ("floodsub", [])
        failed = node.process.wait_event(lambda e: str(e["event"]).startswith("pubsub_boot"))
        assert failed["event"] == "pubsub_bootstrap_failed", failed
        assert "could not connect to /ip4/127.0.0.1/tcp/1" in str(failed["error"])
        assert node.process.stop() == 0
    finally:
        node.process.kill()
