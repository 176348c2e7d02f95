"""Long-lived ``p2pstack node`` subprocesses shared by the CLI tests (one start per session)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from p2pstack.identity import Identity
from tests.p2pstack.cli.runner import NodeProcess, run_cli


@attrs.frozen
class RunningNode:
    """A node subprocess with the fields of its ``listening`` line."""

    process: NodeProcess
    peer_id: str
    addr: str  # /ip4/127.0.0.1/tcp/PORT/p2p/ID
    key_path: Path
    key_peer_id: str  # what ``key generate`` printed for ``key_path``


def _start(key_dir: Path, *options: str) -> RunningNode:
    key_path = key_dir / "node.key"
    generated = run_cli("key", "generate", str(key_path))
    assert generated.returncode == 0, generated.stderr
    process = NodeProcess(["--json", "--key", str(key_path), *options])
    try:
        # The contract says "listening" is the FIRST line: take line 0, whatever it is.
        first = process.wait_event(lambda _: True)
        assert first["event"] == "listening", first
        addrs = first["addrs"]
        assert isinstance(addrs, list) and addrs, first
        peer_id = first["peer_id"]
        assert isinstance(peer_id, str), first
        return RunningNode(process, peer_id, str(addrs[0]), key_path, generated.stdout.strip())
    except BaseException:
        process.kill()
        raise


def _stop(node: RunningNode) -> None:
    status = node.process.stop(signal.SIGTERM)
    assert status == 0, (status, node.process.stderr)


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    """A node with the default stack (Noise; yamux, then mplex) and a key file."""
    running = _start(tmp_path_factory.mktemp("node"))
    yield running
    _stop(running)


@pytest.fixture(scope="session")
def plain_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    """A node that speaks only plaintext and mplex."""
    running = _start(
        tmp_path_factory.mktemp("plain-node"), "--security", "plaintext", "--muxer", "mplex"
    )
    yield running
    _stop(running)


@pytest.fixture
def client_key(tmp_path: Path) -> tuple[Path, str]:
    """A fresh key file for a client, and its peer ID (to find the client in node events)."""
    path = tmp_path / "client.key"
    identity = Identity.generate()  # in-process: ``key generate`` has its own tests
    identity.save(path)
    return path, str(identity.peer_id)
