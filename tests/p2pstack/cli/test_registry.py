"""The command registry: built-in commands parse without importing the network stack, and a
registered command is imported only when it runs."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from p2pstack.roots import defaults
from p2pstack.roots.cli import _registry
from p2pstack.roots.cli._main import main
from p2pstack.roots.cli._parser import MUXER_NAMES, SECURITY_NAMES, build_parser
from p2pstack.roots.cli._registry import COMMANDS, Command, register

#: Loaded by the network commands only.
STACK = ("p2pstack.host", "transports", "protocols", "anyio")
#: Not needed to print help.
HEAVY = ("google.protobuf", "cryptography", "multiaddr")

#: A runner for the plugin test; records the arguments it ran with.
ran: list[argparse.Namespace] = []


def plugin_runner(args: argparse.Namespace) -> int:
    ran.append(args)
    return 7


def _modules_after(argv: list[str]) -> list[str]:
    """Run ``main(argv)`` in a fresh interpreter; return its loaded module names."""
    code = (
        "import json, sys\n"
        "from p2pstack.roots.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded: list[str] = json.loads(result.stderr.splitlines()[-1])
    return loaded


def _matching(loaded: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in loaded if any(m == p or m.startswith(p + ".") for p in prefixes)]


def test_help_loads_neither_the_stack_nor_protobuf_nor_crypto() -> None:
    assert _matching(_modules_after(["--help"]), STACK + HEAVY) == []


def test_id_loads_no_host_transport_or_protocol() -> None:
    loaded = _modules_after(["id"])
    assert "p2pstack.identity" in loaded  # the check looks at the right process
    assert _matching(loaded, STACK) == []


def test_ping_help_is_complete_without_running_anything(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["ping", "--help"])
    text = capsys.readouterr().out
    for option in ("--count", "--timeout", "--security", "--muxer", "--key", "upgrade"):
        assert option in text


def test_stack_names_match_the_default_stack() -> None:
    assert set(SECURITY_NAMES) == set(defaults.SECURITY)
    assert set(MUXER_NAMES) == set(defaults.MUXERS)


def test_every_builtin_runner_resolves() -> None:
    for name in ("key", "id", "node", "ping", "identify", "perf", "sim"):
        assert callable(_registry.load_runner(name))


def test_a_registered_command_parses_and_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    def configure(p: argparse.ArgumentParser) -> None:
        p.add_argument("--flag", type=int, required=True)

    command = Command("plugin", "a test command", configure, f"{__name__}:plugin_runner")
    monkeypatch.setitem(COMMANDS, "plugin", command)
    ran.clear()
    assert main(["plugin", "--flag", "3"]) == 7
    assert [args.flag for args in ran] == [3]


def test_registering_a_name_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="ping"):
        register(Command("ping", "again", lambda p: None, "x:y"))
