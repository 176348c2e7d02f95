"""The worked example of docs/architecture.md: a third-party service on public names only."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import anyio
import pytest

from p2pstack import open_host
from p2pstack.events import PeerDisconnected
from protocols.identify import Identify
from tests.p2pstack.hosts import memory_hosts
from transports.memory import MemoryTransport
from transports.noise import Noise
from transports.yamux import Yamux

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "greeter.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("greeter_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


greeter = _load()


def test_example_imports_only_public_names() -> None:
    tree = ast.parse(EXAMPLE.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            assert node.module is not None
            assert not any(part.startswith("_") for part in node.module.split(".")), node.module
            assert not any(alias.name.startswith("_") for alias in node.names), node.module


@pytest.mark.anyio
async def test_greeter_hello_on_connect_and_goodbye_before_disconnect() -> None:
    services = [[Identify(), greeter.Greeter("b")]]
    async with memory_hosts(1, services=services) as (b,):
        with b.events.subscribe(greeter.Greeted, PeerDisconnected) as events:
            with anyio.fail_after(10):
                async with open_host(
                    transports=[MemoryTransport()],
                    security=[Noise()],
                    muxers=[Yamux()],
                    services=[Identify(), greeter.Greeter("a")],
                ) as a:
                    await a.connect(b.addrs[0])
                    first = await events.receive()
                    assert isinstance(first, greeter.Greeted)
                    assert (first.peer_id, first.text) == (a.peer_id, "hello from a")
                # a left: its stop() ran while the connection was still open, so b hears the
                # goodbye before it sees the peer go away.
                second = await events.receive()
                assert isinstance(second, greeter.Greeted), second
                assert second.text == "goodbye from a"
                third = await events.receive()
                assert isinstance(third, PeerDisconnected)
                assert third.peer_id == a.peer_id
