"""Where a process's memory is: resident bytes by kind of mapping (``/proc/self/smaps``),
CPython's object allocator (``sys._debugmallocstats``), live objects by type. Diagnostics of the
node under attack (``node_proc.py`` answers ``breakdown`` and ``census`` with these), used to
find what a flood leaves resident (docs/reliability.md).
"""

from __future__ import annotations

import collections
import gc
import os
import re
import sys
import tempfile
import tracemalloc

__all__ = ["memory_breakdown", "object_census", "traced_top"]

_MIB = 1 << 20


def _smaps() -> dict[str, int]:
    """Resident bytes of glibc's ``[heap]``, of other anonymous maps (pymalloc arenas, large
    mmap'd buffers, thread stacks) and of file-backed maps (code, shared libraries)."""
    totals = {"heap": 0, "anonymous": 0, "files": 0}
    kind = "files"
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            first = line.split(maxsplit=6)
            if len(first) >= 5 and "-" in first[0] and not first[0].endswith(":"):
                name = first[5].strip() if len(first) > 5 else ""
                kind = "heap" if name == "[heap]" else "anonymous" if not name else "files"
                kind = "anonymous" if name.startswith("[anon") else kind
            elif line.startswith("Rss:"):
                totals[kind] += int(line.split()[1]) * 1024
    return totals


def _pymalloc() -> dict[str, int]:
    """Arena and pool figures from ``sys._debugmallocstats()`` (written to C's stderr)."""
    with tempfile.TemporaryFile("w+") as out:
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read()
    patterns = {
        "arenas": r"# arenas allocated current\s*=\s*([\d,]+)",
        "arenas_highwater": r"# arenas highwater mark\s*=\s*([\d,]+)",
        "allocated_block_bytes": r"# bytes in allocated blocks\s*=\s*([\d,]+)",
        "free_block_bytes": r"# bytes in available blocks\s*=\s*([\d,]+)",
        "unused_pools": r"(\d+) unused pools \*",
    }
    figures: dict[str, int] = {}
    for key, pattern in patterns.items():
        match = re.search(pattern, text)
        if match:
            figures[key] = int(match.group(1).replace(",", ""))
    return figures


def memory_breakdown() -> dict[str, object]:
    """Resident memory by kind (MiB) and pymalloc's arena figures, after a garbage collection.

    Returns:
        A JSON-serialisable mapping.
    """
    gc.collect()
    maps = {f"{kind}_mib": round(size / _MIB, 1) for kind, size in _smaps().items()}
    return {**maps, **_pymalloc(), "blocks": sys.getallocatedblocks()}


#: Types whose holders the census names (a sample of each: every lookup scans every object).
_HELD = ("Event", "deque", "CancelScope", "set", "Context", "method", "cell")


def _holder(holder: object, owner: bool) -> str:
    """The type of ``holder``, or (if ``owner``) for an instance ``__dict__`` its owner's."""
    if owner and isinstance(holder, dict):
        owners = [o for o in gc.get_referrers(holder) if getattr(o, "__dict__", None) is holder]
        if owners:
            return f"{type(owners[0]).__qualname__}.__dict__"
    return type(holder).__qualname__


def object_census(top: int = 30) -> dict[str, object]:
    """The ``top`` most numerous types among objects tracked by the garbage collector.

    Returns:
        Type name to count, most numerous first.
    """
    counts: collections.Counter[str] = collections.Counter()
    samples: dict[str, list[object]] = {name: [] for name in _HELD}
    for obj in gc.get_objects():
        name = type(obj).__qualname__
        counts[name] += 1
        if name == "coroutine":
            counts[f"coroutine {obj.cr_code.co_qualname}"] += 1
        elif name in samples and len(samples[name]) < 100:
            samples[name].append(obj)
    holders: collections.Counter[str] = collections.Counter()
    for name, objs in samples.items():
        found = [h for h in gc.get_referrers(*objs) if h is not objs]
        # Owners of instance dicts for the first few only (each lookup scans every object).
        holders.update(f"{name} held by {_holder(h, i < 8)}" for i, h in enumerate(found))
    del samples
    census: dict[str, object] = dict(counts.most_common(top))
    return census | dict(holders.most_common(40))


def traced_top(top: int = 30) -> dict[str, object]:
    """The ``top`` source lines holding the most tracemalloc-tracked memory (empty unless the
    process traces: ``node_proc.py --tracemalloc``).

    Returns:
        ``"file:line"`` to ``[KiB, blocks]``, largest first.
    """
    if not tracemalloc.is_tracing():
        return {}
    stats = tracemalloc.take_snapshot().statistics("lineno")[:top]
    return {
        f"{stat.traceback[0].filename}:{stat.traceback[0].lineno}": [stat.size >> 10, stat.count]
        for stat in stats
    }
