"""The ``dht`` actions' and ``node``'s DHT failures that need no DHT: bad arguments and
unreachable bootstrap peers give one ``p2pstack: error:`` line and exit 1 (in-process ``main``)."""

from __future__ import annotations

import pytest

from p2pstack.identity import Identity
from p2pstack.roots.cli._main import main

PEER = str(Identity.generate().peer_id)
#: Nothing listens on TCP port 1 of the loopback: the connection is refused at once.
REFUSED = f"/ip4/127.0.0.1/tcp/1/p2p/{PEER}"


def _one_line_error(status: int, capsys: pytest.CaptureFixture[str], *fragments: str) -> None:
    captured = capsys.readouterr()
    detail = f"exit {status}\nstdout: {captured.out!r}\nstderr: {captured.err!r}"
    assert status == 1, detail
    assert captured.out == "", detail
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("p2pstack: error: "), detail
    for fragment in fragments:
        assert fragment in lines[0], detail


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["provide", "not-a-cid"], "invalid CID 'not-a-cid'"),
        (["find-providers", "Qm0"], "invalid CID 'Qm0'"),
        (["find-peer", "12D3KooWnope"], "invalid peer ID '12D3KooWnope'"),
    ],
)
def test_bad_arguments_fail_before_the_network(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _one_line_error(main(["dht", *argv, "--bootstrap", REFUSED]), capsys, fragment)


@pytest.mark.parametrize("json", [[], ["--json"]])
def test_unreachable_bootstrap(json: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["dht", "get", "/test/k", "--bootstrap", REFUSED, "--timeout", "10", *json])
    _one_line_error(status, capsys, "could not connect to /ip4/127.0.0.1/tcp/1")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("/ip4/127.0.0.1/tcp/1", "must end in /p2p/<peer-id>"),
        ("nonsense", "--bootstrap: invalid multiaddr 'nonsense'"),
    ],
)
@pytest.mark.parametrize("command", [["dht", "find-peer", PEER], ["node"]])
def test_bad_bootstrap_option(
    command: list[str], value: str, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _one_line_error(main([*command, "--bootstrap", value]), capsys, fragment)
