"""The ``p2pstack`` command line (a composition root). ``p2pstack --help`` lists the commands."""

from __future__ import annotations

from p2pstack.roots.cli._main import main

__all__ = ["main"]
