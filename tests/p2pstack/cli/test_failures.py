"""Expected failures of the client commands print ONE ``p2pstack: error:`` line and exit 1;
usage errors exit 2 (README, "The command line")."""

from __future__ import annotations

import time

import pytest

from p2pstack.identity import Identity
from tests.p2pstack.cli.conftest import RunningNode
from tests.p2pstack.cli.runner import assert_one_line_error, run_cli, silent_tcp_server

OTHER_PEER = str(Identity.generate().peer_id)


def _client_args(command: str) -> list[str]:
    """The arguments that follow the address for each client command."""
    return {
        "ping": ["--count", "1"],
        "identify": [],
        "perf": ["--upload", "1KiB", "--download", "1KiB"],
    }[command]


@pytest.mark.parametrize("command", ["ping", "identify", "perf"])
def test_unreachable_address(command: str) -> None:
    addr = f"/ip4/127.0.0.1/tcp/1/p2p/{OTHER_PEER}"
    line = assert_one_line_error(run_cli(command, addr, *_client_args(command)))
    # The README's example, word for word.
    assert line == "p2pstack: error: could not connect to /ip4/127.0.0.1/tcp/1: connection refused"


@pytest.mark.parametrize(
    "addr",
    [
        "garbage",
        "/ip4/127.0.0.1/tcp/notaport",
        "/ip4/999.0.0.1/tcp/1",
        "/ip4/127.0.0.1/tcp/1/p2p/x",
    ],
)
def test_bad_multiaddr(addr: str) -> None:
    assert_one_line_error(run_cli("ping", addr, "-c", "1"), "invalid multiaddr", addr)


def test_peer_id_mismatch(node: RunningNode) -> None:
    wrong = node.addr.replace(node.peer_id, OTHER_PEER)
    assert_one_line_error(
        run_cli("ping", wrong, "-c", "1"),
        "could not connect to",
        "peer ID mismatch",
        OTHER_PEER,
        node.peer_id,
    )


def test_plaintext_client_against_noise_node(node: RunningNode) -> None:
    assert_one_line_error(
        run_cli("ping", node.addr, "-c", "1", "--security", "plaintext"),
        "no security channel in common with the peer",
        "/plaintext/2.0.0",
    )


def test_noise_client_against_plaintext_node(plain_node: RunningNode) -> None:
    assert_one_line_error(
        run_cli("identify", plain_node.addr),
        "no security channel in common with the peer",
        "/noise",
    )


def test_muxer_mismatch(plain_node: RunningNode) -> None:
    assert_one_line_error(
        run_cli("ping", plain_node.addr, "--security", "plaintext", "--muxer", "yamux"),
        "no stream muxer in common with the peer",
        "/yamux/1.0.0",
    )


@pytest.mark.parametrize("command", ["ping", "identify", "perf"])
def test_timeout_against_a_silent_listener(command: str) -> None:
    with silent_tcp_server() as port:
        addr = f"/ip4/127.0.0.1/tcp/{port}/p2p/{OTHER_PEER}"
        started = time.monotonic()
        result = run_cli(command, addr, "--timeout", "0.5", *_client_args(command))
        elapsed = time.monotonic() - started
    assert_one_line_error(result, "timed out after 0.5 s")
    assert elapsed < 10, elapsed  # the deadline held (start-up of the interpreter included)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["key"],
        ["key", "generate"],
        ["key", "generate", "k.key", "--type", "dsa"],
        ["ping"],
        ["ping", "/ip4/127.0.0.1/tcp/1", "--count", "0"],
        ["ping", "/ip4/127.0.0.1/tcp/1", "--timeout", "-1"],
        ["ping", "/ip4/127.0.0.1/tcp/1", "--security", "ssl"],
        ["ping", "/ip4/127.0.0.1/tcp/1", "--muxer", "spdy"],
        ["perf", "/ip4/127.0.0.1/tcp/1", "--upload", "1MiB"],
        ["perf", "/ip4/127.0.0.1/tcp/1", "--upload", "1XB", "--download", "1"],
        ["node", "--bogus"],
    ],
    ids=lambda argv: " ".join(argv) or "no-arguments",
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    result = run_cli(*argv)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("usage: p2pstack"), result.stderr
    assert result.stderr.splitlines()[-1].startswith("p2pstack"), result.stderr
    assert ": error: " in result.stderr.splitlines()[-1]
