"""The ``p2pstack`` package: lazy exports, and light modules that stay light."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import p2pstack

#: Modules that a light import must not load: the host and what it pulls in.
HEAVY = ("p2pstack.host", "google.protobuf", "cryptography")


def _loaded_after(statement: str) -> list[str]:
    """Run ``statement`` in a fresh interpreter; return the names of its loaded modules."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def _heavy(loaded: list[str]) -> list[str]:
    return [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]


@pytest.mark.parametrize(
    "statement",
    ["import p2pstack", "import p2pstack.errors, p2pstack.interfaces", "import p2pstack.roots"],
)
def test_light_imports_load_no_host_protobuf_or_crypto(statement: str) -> None:
    assert _heavy(_loaded_after(statement)) == []


def test_the_check_sees_heavy_modules() -> None:
    assert "p2pstack.host" in _heavy(_loaded_after("from p2pstack import Host"))


def test_lazy_exports_resolve_to_their_modules() -> None:
    from p2pstack.builder import open_host
    from p2pstack.host import Host

    assert p2pstack.open_host is open_host
    assert p2pstack.Host is Host
    for name in p2pstack.__all__:
        assert getattr(p2pstack, name) is not None
        assert name in dir(p2pstack)


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = p2pstack.no_such_name
