"""The ``p2pstack`` DHT command line against js-libp2p and py-libp2p DHT nodes: a ``p2pstack node
--dht server`` joins two nodes of the other implementation, and ephemeral ``p2pstack dht ...``
clients put, get, provide, find providers and find a peer through either side.

The CLI runs in its own processes, so one anyio backend is enough here (test_kad.py covers both
with the library).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import attrs
import pytest

from tests.interop.kad_nodes import (
    NAMESPACE,
    OP_TIMEOUT,
    START_TIMEOUT,
    RemoteNode,
    eventually_contains,
    make_cid,
    open_remote,
    strip_p2p,
)
from tests.interop.peers import REPO, Event, PeerProcess

pytestmark = pytest.mark.anyio

CLI = [sys.executable, "-m", "p2pstack.roots.cli"]
#: Bound on one CLI client run: interpreter start, dial, one lookup, exit.
CLI_TIMEOUT = 60.0


def _env() -> dict[str, str]:
    # The code under test is this checkout's, whatever is installed in the venv.
    return {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kad-cli-peers")


@attrs.frozen
class CliNet:
    """``first`` <- ``second`` (one remote kind) <- ``ours`` (a ``p2pstack node`` process)."""

    kind: str
    first: RemoteNode
    second: RemoteNode
    ours_id: str
    ours_addr: str


@asynccontextmanager
async def open_cli_node(bootstrap: str, log_dir: Path) -> AsyncIterator[Event]:
    """``p2pstack node --dht server`` joined through ``bootstrap``; yields its ``listening``."""
    args = ["node", "--listen", "/ip4/127.0.0.1/tcp/0", "--json", "--dht", "server"]
    args += ["--dht-namespace", NAMESPACE, "--bootstrap", bootstrap]
    stderr_path = log_dir / "p2pstack-node.stderr"
    with stderr_path.open("wb") as stderr:
        process = await anyio.open_process(
            CLI + args, stdout=subprocess.PIPE, stderr=stderr, env=_env(), cwd=str(REPO)
        )
        try:
            node = PeerProcess("p2pstack", process, stderr_path)
            yield await node.wait_for("listening", START_TIMEOUT)
        finally:
            with anyio.CancelScope(shield=True):
                process.terminate()
                with anyio.move_on_after(5):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
                await process.aclose()


@pytest.fixture(scope="module", params=["js", "py"])
async def cli_net(
    request: pytest.FixtureRequest, anyio_backend: str, log_dir: Path
) -> AsyncIterator[CliNet]:
    kind: str = request.param
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(open_remote(kind, [], log_dir=log_dir))
        second = await stack.enter_async_context(open_remote(kind, [first.addr], log_dir=log_dir))
        await second.command("bootstrap")
        await eventually_contains(first, second.peer_id)
        ours = await stack.enter_async_context(open_cli_node(second.addr, log_dir))
        yield CliNet(kind, first, second, ours["peer_id"], ours["addrs"][0])


async def dht(*args: str) -> list[Event]:
    """Run ``p2pstack dht ARGS --json --dht-namespace test``; its events (exit 0 asserted)."""
    argv = [*CLI, "dht", *args, "--json", "--dht-namespace", NAMESPACE]
    argv += ["--timeout", str(OP_TIMEOUT)]
    with anyio.fail_after(CLI_TIMEOUT):
        done = await anyio.run_process(argv, check=False, env=_env(), cwd=str(REPO))
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, f"{argv[3:]} exited {done.returncode}: {err[-2000:]}"
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _one(events: list[Event], name: str) -> Event:
    found = [e for e in events if e.get("event") == name]
    assert len(found) == 1, events
    return found[0]


async def test_cli_node_in_their_tables(cli_net: CliNet) -> None:
    await eventually_contains(cli_net.second, cli_net.ours_id)
    await eventually_contains(cli_net.first, cli_net.ours_id)


async def test_cli_put_they_get(cli_net: CliNet) -> None:
    key, value = f"/test/cli-put-{cli_net.kind}", "from-the-cli"
    put = _one(await dht("put", key, value, "--bootstrap", cli_net.ours_addr), "put")
    assert put["key"] == key
    assert put["stored_at"] >= 1
    assert isinstance(put["peer_id"], str)
    assert await cli_net.first.get(key) == value


async def test_cli_gets_their_value(cli_net: CliNet) -> None:
    key, value = f"/test/cli-get-{cli_net.kind}", f"from-{cli_net.kind}"
    await cli_net.first.put(key, value)
    got = _one(await dht("get", key, "--bootstrap", cli_net.second.addr), "value")
    assert (got["key"], got["value"]) == (key, value)


async def test_cli_provide_they_find(cli_net: CliNet) -> None:
    cid, multihash = make_cid(f"cli provides for {cli_net.kind}".encode())
    provided = _one(await dht("provide", cid, "--bootstrap", cli_net.first.addr), "provide")
    assert provided["stored_at"] >= 1
    found = await cli_net.second.find_providers(cid, multihash)
    assert provided["peer_id"] in found, found
    assert found[provided["peer_id"]], "provider record without addresses"


async def test_cli_finds_their_provider(cli_net: CliNet) -> None:
    cid, multihash = make_cid(f"{cli_net.kind} provides for the cli".encode())
    await cli_net.first.provide(cid, multihash)
    events = await dht("find-providers", cid, "--bootstrap", cli_net.second.addr)
    providers = {e["peer_id"]: e["addrs"] for e in events if e.get("event") == "provider"}
    assert _one(events, "done")["count"] == len(providers)
    assert cli_net.first.peer_id in providers, events
    assert strip_p2p(cli_net.first.addr) in {strip_p2p(a) for a in providers[cli_net.first.peer_id]}


async def test_cli_finds_a_peer_through_them(cli_net: CliNet) -> None:
    events = await dht("find-peer", cli_net.first.peer_id, "--bootstrap", cli_net.second.addr)
    peer = _one(events, "peer")
    assert peer["peer_id"] == cli_net.first.peer_id
    assert strip_p2p(cli_net.first.addr) in {strip_p2p(a) for a in peer["addrs"]}
