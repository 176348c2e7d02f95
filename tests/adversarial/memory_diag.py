"""Where a complete-connection flood's memory goes: a diagnostic, not a test.

``python -m tests.adversarial.memory_diag [--count 500] [--sources 63] [--tracemalloc]`` starts the
node in a process of its own (``node_proc.py``, per-IP limits on loopback as in
``test_complete_connections_per_ip_limit``), floods it with ``--count`` complete connections
from ``--sources`` addresses (``flood.py``), and prints one JSON object: the node's memory
breakdown (``memory.py``: glibc heap, anonymous maps, pymalloc arenas) at the baseline, at the
peak and 3 s and 13 s after the flood, the live objects by type at the peak and after, and with
``--tracemalloc`` the source lines holding the most memory at the peak (tracemalloc's own
bookkeeping then inflates the RSS figures).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import anyio

from tests.adversarial.flood import run_flood
from tests.adversarial.node import port_of
from tests.adversarial.node_proc import NodeProcess, close_node_process, open_node_process

__all__ = ["main"]

#: Bound on waiting for the flood's connections to be up (seconds; the peak is recorded then
#: even if fewer are up).
_RAMP_TIMEOUT = 60.0


async def _at_peak(node: NodeProcess, count: int, report: dict[str, object], traced: bool) -> None:
    """Record the node's memory once it holds (nearly) every connection of the flood."""
    # Another process's descriptors: nothing to wait on but /proc, read every 0.1 s.
    for _ in range(int(_RAMP_TIMEOUT * 10)):
        if node.sample()[0] >= count:
            break
        await anyio.sleep(0.1)
    report["peak"] = await node.query("breakdown")
    report["peak_objects"] = await node.query("census 60")
    if traced:
        report["peak_lines"] = await node.query("top 40")


async def _diagnose(args: argparse.Namespace) -> dict[str, object]:
    node = await open_node_process(exempt_loopback=False, traced=args.tracemalloc)
    report: dict[str, object] = {}
    try:
        report["baseline"] = await node.query("breakdown")
        report["baseline_objects"] = await node.query("census 60")
        async with anyio.create_task_group() as group:

            async def flood() -> None:
                port = port_of(node.addrs[0])
                kwargs = {"port": port, "count": args.count, "sources": args.sources}
                report["flood"] = await run_flood("complete", seconds=4.0, **kwargs)

            group.start_soon(flood)
            await _at_peak(node, args.count, report, args.tracemalloc)
        await anyio.sleep(3)
        report["after_3s"] = await node.query("breakdown")
        report["after_objects"] = await node.query("census 60")
        await anyio.sleep(10)
        report["after_13s"] = await node.query("breakdown")
    finally:
        await close_node_process(node)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--sources", type=int, default=63)
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(anyio.run(_diagnose, args), indent=1))


if __name__ == "__main__":
    main()
