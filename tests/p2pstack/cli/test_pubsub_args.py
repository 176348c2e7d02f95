"""Parsing of the pubsub command line: ``node --pubsub/--subscribe`` and the exact shapes of
``pubsub sub`` and ``pubsub pub`` (issue 11, item 5), usage errors, and help."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from p2pstack.roots.cli._dht_args import node_wants_dht
from p2pstack.roots.cli._main import main
from p2pstack.roots.cli._parser import build_parser
from p2pstack.roots.cli._pubsub_args import PUBSUB_ACTIONS, node_wants_pubsub
from p2pstack.roots.cli._registry import load_runner
from tests.p2pstack.cli.test_registry import HEAVY, STACK, _matching, _modules_after

MA = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize(
    ("argv", "router", "dht"),
    [
        ([], None, None),
        (["--pubsub", "floodsub"], "floodsub", None),
        (["--subscribe", "news"], "gossipsub", None),
        (["--pubsub", "floodsub", "--subscribe", "news"], "floodsub", None),
        # --bootstrap names pubsub peers when pubsub is on, DHT peers otherwise.
        (["--subscribe", "news", "--bootstrap", MA], "gossipsub", None),
        (["--bootstrap", MA], None, "server"),
        (["--pubsub", "gossipsub", "--dht", "client", "--bootstrap", MA], "gossipsub", "client"),
        (["--pubsub", "gossipsub", "--dht-namespace", "test"], "gossipsub", "server"),
    ],
)
def test_node_router_and_dht(argv: list[str], router: str | None, dht: str | None) -> None:
    args = _parse("node", *argv)
    assert (node_wants_pubsub(args), node_wants_dht(args)) == (router, dht)


def test_node_subscribes_to_repeated_topics() -> None:
    args = _parse("node", "--subscribe", "a", "--subscribe", "b b", "--json")
    assert (args.subscribe, args.json) == (["a", "b b"], True)


def test_sub_shape() -> None:
    args = _parse("pubsub", "sub", "news", "--bootstrap", MA, "--router", "floodsub")
    assert (args.command, args.pubsub_command, args.topic) == ("pubsub", "sub", "news")
    assert (args.bootstrap, args.router, args.count) == ([MA], "floodsub", None)
    assert (args.json, args.key, args.timeout) == (False, None, 30.0)
    args = _parse("pubsub", "sub", "news", "--bootstrap", MA, "--count", "3", "--json")
    assert (args.router, args.count, args.json) == ("gossipsub", 3, True)


def test_pub_shape() -> None:
    args = _parse("pubsub", "pub", "news", "hello world", "--bootstrap", MA, "--bootstrap", MA)
    assert (args.pubsub_command, args.topic, args.message) == ("pub", "news", "hello world")
    assert (args.bootstrap, args.router, args.wait_peers) == ([MA, MA], "gossipsub", 1)
    args = _parse("pubsub", "pub", "t", "m", "--bootstrap", MA, "--wait-peers", "0", "--json")
    assert (args.wait_peers, args.json) == (0, True)
    assert _parse("pubsub", "pub", "t", "m", "--bootstrap", MA, "--timeout", "2").timeout == 2.0


@pytest.mark.parametrize(
    "argv",
    [
        ["pubsub", "sub", "news"],  # --bootstrap is required
        ["pubsub", "pub", "news", "--bootstrap", MA],  # MESSAGE is missing
        ["pubsub", "sub", "", "--bootstrap", MA],
        ["pubsub", "sub", "news", "--bootstrap", MA, "--count", "0"],
        ["pubsub", "sub", "news", "--bootstrap", MA, "--router", "meshsub"],
        ["pubsub", "pub", "t", "m", "--bootstrap", MA, "--wait-peers", "-1"],
        ["pubsub", "pub", "t", "m", "--bootstrap", MA, "--timeout", "0"],
        ["pubsub", "list"],
        ["pubsub"],
        ["node", "--pubsub", "meshsub"],
        ["node", "--subscribe", ""],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["pubsub", "--help"])
    assert raised.value.code == 0
    out = capsys.readouterr().out
    for action in PUBSUB_ACTIONS:
        assert action in out
    with pytest.raises(SystemExit):
        main(["pubsub", "sub", "--help"])
    out = capsys.readouterr().out
    for option in ("TOPIC", "--bootstrap", "--router {gossipsub,floodsub}", "--count N"):
        assert option in out
    with pytest.raises(SystemExit):
        main(["pubsub", "pub", "--help"])
    out = capsys.readouterr().out
    for option in ("TOPIC MESSAGE", "--wait-peers N", "--json", "--timeout"):
        assert option in out
    with pytest.raises(SystemExit):
        main(["node", "--help"])
    out = capsys.readouterr().out
    for option in ("--pubsub {gossipsub,floodsub}", "--subscribe TOPIC"):
        assert option in out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "pubsub" in capsys.readouterr().out


def test_pubsub_help_loads_no_stack() -> None:
    assert _matching(_modules_after(["pubsub", "pub", "--help"]), STACK + HEAVY) == []


def test_pubsub_runner_resolves() -> None:
    assert callable(load_runner("pubsub"))


def test_node_without_pubsub_does_not_import_it() -> None:
    code = (
        "import sys\n"
        "import p2pstack.roots.cli._node, p2pstack.roots.defaults\n"
        "print(sorted(m for m in sys.modules if m.startswith('protocols.pubsub')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
