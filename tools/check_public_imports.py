"""Check that ``transports`` and ``protocols`` use only p2pstack's public names.

import-linter enforces the package layering; this adds what its wildcards cannot express: no
import of a private module (``p2pstack.x._y``) or a private name (``from p2pstack.x import _y``).
Exits 1 and lists each offending import.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOTS = ("transports", "protocols")


def _private(parts: list[str]) -> bool:
    return any(part.startswith("_") and part != "__init__" for part in parts)


def offending_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "p2pstack" and _private(parts):
                    found.append(f"{path}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "p2pstack":
                continue
            names = [a.name for a in node.names]
            if _private(parts) or any(n.startswith("_") for n in names):
                found.append(f"{path}:{node.lineno}: from {node.module} import {', '.join(names)}")
    return found


def main() -> int:
    bad = [
        line
        for root in ROOTS
        for p in sorted(Path(root).rglob("*.py"))
        for line in offending_imports(p)
    ]
    for line in bad:
        print(f"private p2pstack import: {line}")
    if not bad:
        print(f"public-imports check: {', '.join(ROOTS)} use only public p2pstack names")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
