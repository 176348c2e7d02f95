"""A target with a planted bug, so that the runner's crash reporting can itself be tested."""

from __future__ import annotations

__all__ = ["fuzz_selftest_crash"]


def fuzz_selftest_crash(data: bytes) -> None:
    """Raise ``ValueError`` on any input that starts with ``b"!"`` (a crash by design).

    Raises:
        ValueError: ``data`` starts with ``b"!"``.
    """
    if data[:1] == b"!":
        raise ValueError("planted crash")
