"""The simulation trace: one JSON object per event with its virtual time, hashed as it is written
so that two runs can be compared by one SHA-256 (see docs/simulation.md, "Trace")."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import IO

__all__ = ["TraceRecorder", "TraceValue"]

TraceValue = str | int | float | bool | None | list["TraceValue"] | dict[str, "TraceValue"]


class TraceRecorder:
    """Records events as canonical JSON lines (sorted keys, no spaces, times rounded to 1 ns)
    and keeps their running SHA-256.

    Args:
        clock: the virtual clock (seconds).
        sink: a text file to write lines to, or ``None``.
        keep: most lines kept in memory (``lines``) for tests; 0 keeps none. The bound keeps a
            long run's memory flat; the hash always covers every line.
    """

    def __init__(
        self, clock: Callable[[], float], *, sink: IO[str] | None = None, keep: int = 0
    ) -> None:
        self._clock = clock
        self._sink = sink
        self._keep = keep
        self._hash = hashlib.sha256()
        self.lines: list[str] = []
        self.count = 0
        self.counts: dict[str, int] = {}
        self.closed = False

    def record(self, kind: str, **fields: TraceValue) -> None:
        """Append event ``kind`` at the current virtual time. Field values must be
        deterministic (no wall time, no object ids). Ignored after ``close``."""
        if self.closed:
            return
        obj: dict[str, TraceValue] = {"t": round(self._clock(), 9), "ev": kind, **fields}
        line = json.dumps(obj, sort_keys=True, separators=(",", ":"))
        self._hash.update(line.encode())
        self._hash.update(b"\n")
        self.count += 1
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self._sink is not None:
            self._sink.write(line + "\n")
        if len(self.lines) < self._keep:
            self.lines.append(line)

    def close(self) -> None:
        """Record nothing more (what happens while a run is torn down is not part of it)."""
        self.closed = True

    def hexdigest(self) -> str:
        """SHA-256 of every line written so far (each followed by a newline): the same as
        ``sha256sum trace.jsonl``."""
        return self._hash.hexdigest()
