"""The ``p2pstack`` subcommands: a registry of names, argument set-up and lazily imported runners.

Parsing needs only each command's name, help and arguments (this module and ``_parser`` import
nothing but the standard library); a command's implementation, and with it the host, the
transports and the protocols, is imported when that command runs. So ``p2pstack --help`` and
``p2pstack id`` start without loading the network stack.

A composition root adds a command with :func:`register` before ``main`` parses.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["COMMANDS", "Command", "load_runner", "register"]

#: Runs a parsed command; returns the exit status.
Runner = Callable[[argparse.Namespace], int]


class Command(NamedTuple):
    """One subcommand.

    Attributes:
        name: the word after ``p2pstack``.
        help: one line for ``p2pstack --help``.
        configure: adds the command's arguments to its subparser (must import nothing heavy).
        runner: ``"package.module:function"``, a :data:`Runner`, imported when the command runs.
    """

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    runner: str


#: Registered commands by name, in ``--help`` order.
COMMANDS: dict[str, Command] = {}


def register(command: Command) -> None:
    """Add a subcommand.

    Args:
        command: the command; its name must be new.

    Raises:
        ValueError: a command of that name is already registered.
    """
    if command.name in COMMANDS:
        raise ValueError(f"command {command.name!r} is already registered")
    COMMANDS[command.name] = command


def load_runner(name: str) -> Runner:
    """Import and return the runner of a registered command.

    Args:
        name: a registered command name.

    Returns:
        The command's runner.

    Raises:
        KeyError: no such command.
        ImportError: the runner's module cannot be imported.
        AttributeError: the module has no such function.
    """
    module_name, _, function = COMMANDS[name].runner.partition(":")
    runner: Runner = getattr(importlib.import_module(module_name), function)
    return runner
