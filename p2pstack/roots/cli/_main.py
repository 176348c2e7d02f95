"""The ``p2pstack`` entry point: parse, prepare the process, run one registered command.
Expected failures print one line to stderr and exit 1; usage errors exit 2; an interrupt exits
130. Imports only the standard library until a command runs (see ``_registry``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from p2pstack.roots.cli._parser import build_parser
from p2pstack.roots.cli._registry import load_runner

__all__ = ["main", "raise_fd_limit"]

_log = logging.getLogger("p2pstack.roots.cli")


def raise_fd_limit() -> tuple[int, int] | None:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit, where allowed.

    A node needs a descriptor per connection; the common soft limit of 1024 would run it out
    of descriptors long before its connection limits. The library only reads the limit; this
    composition root raises it.

    Returns:
        The (soft, hard) limits now in force, or None where there is no such limit (not POSIX).
    """
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # e.g. macOS refuses an unlimited hard limit
            _log.debug("cannot raise RLIMIT_NOFILE from %s to %s: %s", soft, hard, exc)
    return soft, hard


def _failure_line(exc: BaseException, args: argparse.Namespace) -> str | None:
    """The one-line message for an expected failure, None for a bug."""
    from p2pstack.roots.cli._errors import EXPECTED, describe

    if not isinstance(exc, EXPECTED):
        return None
    message = describe(exc)
    timeout = getattr(args, "timeout", None)
    if isinstance(exc, TimeoutError) and message == "timed out" and timeout:
        message = f"timed out after {timeout:g} s"
    return f"p2pstack: error: {message}"


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``p2pstack`` console script.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    raw = sys.argv[1:] if argv is None else list(argv)
    verbosity = 0
    while verbosity < len(raw) and raw[verbosity] in ("-v", "-vv", "--verbose"):
        verbosity += 1
    if raw[verbosity : verbosity + 1] == ["daemon"]:  # p2pd's Go-style flags, not argparse's
        from p2pstack.roots.daemon._main import main as daemon_main

        levels = [logging.WARNING, logging.INFO, logging.DEBUG]
        count = sum(2 if a == "-vv" else 1 for a in raw[:verbosity])
        logging.basicConfig(
            level=levels[min(count, 2)], format="%(levelname)s %(name)s: %(message)s"
        )
        return daemon_main(raw[verbosity + 1 :])
    args = build_parser().parse_args(raw)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    raise_fd_limit()
    try:
        return load_runner(args.command)(args)
    except KeyboardInterrupt:
        return 130
    except BaseException as group:
        exc = _leaf(group)
        if isinstance(exc, KeyboardInterrupt):
            return 130
        line = _failure_line(exc, args)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
