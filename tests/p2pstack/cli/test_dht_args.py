"""Parsing of the DHT command line: ``node``'s DHT options and the ``dht`` actions' exact shapes
(issue 10, item 8), usage errors, and help."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from p2pstack.roots.cli._dht_args import DHT_ACTIONS, DHT_PROTOCOL, node_wants_dht
from p2pstack.roots.cli._main import main
from p2pstack.roots.cli._parser import build_parser
from p2pstack.roots.cli._registry import load_runner
from protocols.kad import PROTOCOL_ID
from tests.p2pstack.cli.test_registry import HEAVY, STACK, _matching, _modules_after

MA = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_default_protocol_is_the_kad_protocol() -> None:
    assert DHT_PROTOCOL == PROTOCOL_ID


def test_node_without_dht_options_runs_no_dht() -> None:
    args = _parse("node")
    assert (args.bootstrap, args.dht, args.dht_namespace) == ([], None, [])
    assert args.dht_protocol == PROTOCOL_ID
    assert node_wants_dht(args) is None


@pytest.mark.parametrize(
    ("argv", "mode"),
    [
        (["--dht", "server"], "server"),
        (["--dht", "client"], "client"),
        (["--bootstrap", MA], "server"),
        (["--dht-namespace", "test"], "server"),
        (["--dht-protocol", "/test/kad/1.0.0"], "server"),
        (["--dht", "client", "--bootstrap", MA], "client"),
    ],
)
def test_node_dht_mode(argv: list[str], mode: str) -> None:
    assert node_wants_dht(_parse("node", *argv)) == mode


def test_node_dht_options_repeat() -> None:
    args = _parse(
        "node",
        "--dht",
        "server",
        "--bootstrap",
        MA,
        "--bootstrap",
        MA.replace("4001", "4002"),
        "--dht-protocol",
        "/lan/kad/1.0.0",
        "--dht-namespace",
        "test",
        "--dht-namespace",
        "/other/",
    )
    assert args.bootstrap == [MA, MA.replace("4001", "4002")]
    assert args.dht_protocol == "/lan/kad/1.0.0"
    assert args.dht_namespace == ["test", "other"]


def test_put_shape() -> None:
    args = _parse(
        "dht", "put", "/test/k", "v", "--bootstrap", MA, "--dht-namespace", "test", "--json"
    )
    assert (args.command, args.dht_command) == ("dht", "put")
    assert (args.record_key, args.value, args.bootstrap) == ("/test/k", "v", [MA])
    assert (args.dht_namespace, args.json, args.key, args.timeout) == (["test"], True, None, 60.0)


def test_get_and_key_file_do_not_collide() -> None:
    args = _parse("dht", "get", "/test/k", "--bootstrap", MA, "--key", "me.key", "--quorum", "2")
    assert (args.record_key, args.key, args.quorum, args.json) == ("/test/k", "me.key", 2, False)


def test_provide_shape() -> None:
    cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    args = _parse("dht", "provide", cid, "--bootstrap", MA, "--listen", "/ip4/127.0.0.1/tcp/0")
    assert (args.cid, args.listen) == (cid, ["/ip4/127.0.0.1/tcp/0"])
    assert _parse("dht", "provide", cid, "--bootstrap", MA).listen is None


def test_find_providers_and_find_peer_shapes() -> None:
    args = _parse("dht", "find-providers", "QmX", "--bootstrap", MA, "--limit", "5")
    assert (args.cid, args.limit) == ("QmX", 5)
    assert _parse("dht", "find-providers", "QmX", "--bootstrap", MA).limit == 20
    args = _parse("dht", "find-peer", "12D3KooWabc", "--bootstrap", MA, "--timeout", "2.5")
    assert (args.peer_id, args.timeout) == ("12D3KooWabc", 2.5)


@pytest.mark.parametrize(
    "argv",
    [
        ["dht", "get", "/test/k"],  # --bootstrap is required
        ["dht", "put", "/test/k", "--bootstrap", MA],  # VALUE is missing
        ["dht", "get", "/test/k", "--bootstrap", MA, "--dht-namespace", "a/b"],
        ["dht", "find-providers", "QmX", "--bootstrap", MA, "--limit", "0"],
        ["dht", "find-peer", "X", "--bootstrap", MA, "--timeout", "-1"],
        ["dht", "lookup", "X", "--bootstrap", MA],
        ["dht"],
        ["node", "--dht", "both"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_help_lists_every_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["dht", "--help"])
    assert raised.value.code == 0
    out = capsys.readouterr().out
    for action in DHT_ACTIONS:
        assert action in out
    with pytest.raises(SystemExit):
        main(["node", "--help"])
    out = capsys.readouterr().out
    for option in ("--bootstrap", "--dht {server,client}", "--dht-protocol", "--dht-namespace"):
        assert option in out


def test_dht_help_loads_no_stack() -> None:
    assert _matching(_modules_after(["dht", "put", "--help"]), STACK + HEAVY) == []


def test_dht_runner_resolves() -> None:
    assert callable(load_runner("dht"))


def test_kad_config_of_the_options() -> None:
    from p2pstack.roots.cli._dht import kad_config

    args = _parse(
        "node", "--dht-protocol", "/lan/kad/1.0.0", "--dht-namespace", "a", "--dht-namespace", "b"
    )
    config = kad_config(args, "server")
    assert (config.mode, config.protocol_id) == ("server", "/lan/kad/1.0.0")
    assert config.passthrough_namespaces == ("a", "b")
    client = kad_config(_parse("dht", "get", "/a/k", "--bootstrap", MA), "client", 4.0)
    assert (client.mode, client.protocol_id, client.passthrough_namespaces) == (
        "client",
        PROTOCOL_ID,
        (),
    )
    assert (client.request_timeout, client.query_timeout) == (4.0, 4.0)
    assert kad_config(args, "client", 90.0).request_timeout == 10.0


def test_node_and_clients_without_the_dht_do_not_import_it() -> None:
    code = (
        "import sys\n"
        "import p2pstack.roots.cli._node, p2pstack.roots.cli._client, p2pstack.roots.defaults\n"
        "print(sorted(m for m in sys.modules if m.startswith('protocols.kad')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
