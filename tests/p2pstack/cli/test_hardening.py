"""The command line on hostile or careless set-ups: key file permissions, per-connection
deadlines, the descriptor limit, refusals and perf caps named as such."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import socket
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from p2pstack.connection import Stream
from p2pstack.host import HostConfig
from p2pstack.identity import Identity
from p2pstack.roots.cli._client import client_config, setup_timeouts
from p2pstack.roots.cli._node import node_config
from p2pstack.roots.defaults import open_default_host
from tests.p2pstack.cli.conftest import RunningNode
from tests.p2pstack.cli.runner import (
    NodeProcess,
    assert_one_line_error,
    hanging_up_tcp_server,
    json_node,
    run_cli,
    silent_tcp_server,
)

OTHER_PEER = str(Identity.generate().peer_id)


def _key(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "node.key"
    Identity.generate().save(path)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_id_refuses_a_key_file_others_can_access(tmp_path: Path, mode: int) -> None:
    path = _key(tmp_path, mode)
    assert_one_line_error(
        run_cli("id", "--key", str(path)), str(path), f"mode {mode:04o}", "chmod 600"
    )


def test_node_and_clients_refuse_a_key_file_others_can_read(
    tmp_path: Path, node: RunningNode
) -> None:
    path = _key(tmp_path, 0o644)
    assert_one_line_error(run_cli("node", "--key", str(path)), str(path), "chmod 600")
    assert_one_line_error(
        run_cli("ping", node.addr, "-c", "1", "--key", str(path)), str(path), "chmod 600"
    )


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_an_owner_only_key_file_is_used(tmp_path: Path, mode: int) -> None:
    path = _key(tmp_path, mode)
    shown = run_cli("id", "--key", str(path))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == str(Identity.load(path).peer_id)


def test_key_generate_writes_owner_only_even_with_an_open_umask(tmp_path: Path) -> None:
    path = tmp_path / "new.key"
    old = os.umask(0)
    try:
        result = run_cli("key", "generate", str(path))
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_timeouts_bound_every_connection_step() -> None:
    names = setup_timeouts()
    assert {"dial_timeout", "upgrade_timeout", "negotiate_timeout"} <= set(names)
    assert not {"close_timeout", "drain_timeout"} & set(names)
    client = client_config(42.0)
    assert all(getattr(client, name) == 42.0 for name in names)
    defaults = HostConfig()
    node = node_config(3.0)
    assert (node.upgrade_timeout, node.negotiate_timeout) == (3.0, 3.0)
    assert all(getattr(node, name) == min(getattr(defaults, name), 3.0) for name in names)
    assert node_config(60.0).upgrade_timeout == 60.0
    assert node_config(None) == defaults


def _seconds_until_closed(port: int, limit: float) -> float:
    """Connect, send the multistream header (a live peer, past any first-byte deadline), then
    nothing more; time how long the node keeps the connection open."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
        sock.sendall(b"\x13/multistream/1.0.0\n")
        try:
            while sock.recv(4096):
                pass  # the node answers the header, then waits for a proposal
        except ConnectionResetError:
            pass
    return time.monotonic() - started


def test_node_timeout_bounds_the_upgrade_of_a_stalled_connection() -> None:
    with json_node("--timeout", "2") as (_, first):
        addrs = first["addrs"]
        assert isinstance(addrs, list)
        port = int(str(addrs[0]).split("/")[4])
        # Without --timeout honoured the node waits 10 s or more (the library's security and
        # upgrade deadlines) and recv times out, failing the test.
        elapsed = _seconds_until_closed(port, limit=8.0)
    assert 1.8 <= elapsed < 8.0, elapsed


def test_node_help_says_what_timeout_bounds() -> None:
    text = " ".join(run_cli("node", "--help").stdout.split())
    assert re.search(r"--timeout SECONDS\s+per-connection deadline", text), text
    assert "upgrade" in text and "negotiation" in text


@pytest.mark.slow
def test_client_upgrade_deadline_is_timeout_not_15_s() -> None:
    with silent_tcp_server() as port:
        addr = f"/ip4/127.0.0.1/tcp/{port}/p2p/{OTHER_PEER}"
        started = time.monotonic()
        result = run_cli("ping", addr, "-c", "1", "--timeout", "17", timeout=40)
        elapsed = time.monotonic() - started
    # The hidden 15 s upgrade deadline would fail first, naming 15 s.
    assert_one_line_error(result, "17 s")
    assert elapsed >= 16.5, elapsed


def _lower_soft_nofile() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="needs /proc (Linux)")
def test_node_raises_its_descriptor_soft_limit_to_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 256:
        pytest.skip("the hard limit leaves nothing to raise")
    node = NodeProcess(["--json"], preexec_fn=_lower_soft_nofile)
    try:
        node.wait_event(lambda e: e.get("event") == "listening")
        limits = Path(f"/proc/{node.proc.pid}/limits").read_text()
    finally:
        node.kill()
    (line,) = [line for line in limits.splitlines() if line.startswith("Max open files")]
    soft, hard_seen = line.split()[3:5]
    expected = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    assert (soft, hard_seen) == (expected, expected), line


@pytest.mark.parametrize("command", ["ping", "identify", "perf"])
def test_a_peer_hanging_up_during_the_upgrade_is_named(command: str) -> None:
    extra = {"ping": ["-c", "1"], "identify": [], "perf": ["--upload", "1", "--download", "1"]}
    with hanging_up_tcp_server() as port:
        addr = f"/ip4/127.0.0.1/tcp/{port}/p2p/{OTHER_PEER}"
        result = run_cli(command, addr, *extra[command], "--timeout", "10")
    assert_one_line_error(result, "closed the connection during the upgrade", "connection limit")


async def _refuse_perf(stream: Stream) -> None:
    """What a perf server does with a request over its cap: end its side at once, no data."""
    await stream.receive()
    await stream.send_eof()
    with anyio.fail_after(30), contextlib.suppress(anyio.EndOfStream):
        while True:
            await stream.receive()
    await stream.aclose()


async def _reset_perf(stream: Stream) -> None:
    await stream.receive()
    await stream.reset()


@pytest.mark.anyio
@pytest.mark.parametrize("handler", [_refuse_perf, _reset_perf])
async def test_perf_cut_short_by_the_server_names_the_size_cap(
    handler: Callable[[Stream], Awaitable[None]],
) -> None:
    async with open_default_host(listen=["/ip4/127.0.0.1/tcp/0"], services=[]) as server:
        server.set_stream_handler("/perf/1.0.0", handler)
        addr = f"{server.addrs[0]}/p2p/{server.peer_id}"
        with anyio.fail_after(40):
            result = await anyio.to_thread.run_sync(
                lambda: run_cli("perf", addr, "--upload", "1KiB", "--download", "1GiB")
            )
    line = assert_one_line_error(result, "perf")
    if handler is _refuse_perf:
        assert "over the server's cap" in line
    assert "yamux stream" not in line
