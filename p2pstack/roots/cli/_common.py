"""What the ``p2pstack`` commands share: output, expected failures, key files, the event loop."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import stat
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from p2pstack.identity import Identity

__all__ = ["Output", "UserError", "check_key_file_mode", "load_identity", "run_async"]


class UserError(Exception):
    """An expected failure: printed as one ``p2pstack: error:`` line, exit status 1."""


class Output:
    """Prints events as JSON lines (``--json``) or as text for people."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def event(self, name: str, text: str, **fields: object) -> None:
        """Print one event: ``{"event": name, **fields}`` or ``text``."""
        if self.as_json:
            print(json.dumps({"event": name, **fields}), flush=True)
        else:
            print(text, flush=True)

    def record(self, fields: dict[str, object], text: str) -> None:
        """Print one result: ``fields`` as JSON or ``text``."""
        print(json.dumps(fields) if self.as_json else text, flush=True)


def check_key_file_mode(path: str) -> None:
    """Refuse a key file that others may read or write, as ssh does with private keys.

    Args:
        path: the key file.

    Raises:
        UserError: the file grants any permission to its group or to others.
        OSError: the file cannot be examined (missing, unreadable directory).
    """
    if os.name != "posix":  # modes mean little elsewhere; ACLs are the platform's business
        return
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise UserError(
            f"key file {path} is accessible by others (mode {mode:04o}); "
            f"a key must be readable by its owner only: chmod 600 {path}"
        )


def load_identity(path: str | None) -> Identity:
    """The identity in key file ``path`` (checked with :func:`check_key_file_mode`), or a fresh
    Ed25519 identity when ``path`` is None.

    Args:
        path: a key file, or None.

    Returns:
        The identity.

    Raises:
        UserError: the key file is accessible by others.
        OSError: the file cannot be read.
        p2pstack.errors.IdentityError: the file does not hold a key.
    """
    from p2pstack.identity import Identity

    if path is None:
        return Identity.generate()
    check_key_file_mode(path)
    return Identity.load(path)


def run_async(
    command: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace
) -> int:
    """Run an async command on anyio (uvloop when installed: the ``uvloop`` extra), with the
    allocator tuned for moving data (``_malloc``).

    Args:
        command: the command's coroutine function.
        args: its parsed arguments.

    Returns:
        The command's exit status.
    """
    import anyio

    from p2pstack.roots.cli._malloc import tune_allocator

    tune_allocator()
    backend_options = {"use_uvloop": importlib.util.find_spec("uvloop") is not None}
    result: int = anyio.run(command, args, backend_options=backend_options)
    return result
