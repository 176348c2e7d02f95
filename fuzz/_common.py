"""Helpers shared by the fuzz targets: invariant checks and input splitting."""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["CHUNK_SIZES", "check", "chunks", "split_control"]

#: How the bytes of one input are cut into ``receive_data`` calls, chosen by 3 control bits:
#: byte by byte, odd sizes that straddle headers, and everything at once (0).
CHUNK_SIZES = (0, 1, 2, 3, 5, 7, 12, 64)


def check(condition: bool, message: str) -> None:
    """Fail the run (a crash) when an invariant does not hold; unlike ``assert``, also under -O.

    Raises:
        AssertionError: ``condition`` is false.
    """
    if not condition:
        raise AssertionError(message)


def split_control(data: bytes) -> tuple[int, bytes]:
    """Split an input into its first (control) byte and the rest; an empty input gives 0."""
    return (data[0], data[1:]) if data else (0, b"")


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    """Cut ``data`` into pieces of ``size`` bytes (one piece if ``size`` is 0; none if empty)."""
    if not size:
        if data:
            yield data
        return
    for start in range(0, len(data), size):
        yield data[start : start + size]
