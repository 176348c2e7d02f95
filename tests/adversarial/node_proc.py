"""The node under attack in a process of its own (``python -m tests.adversarial.node_proc``), so
that its resident memory and descriptors are measured without the test's client, without the
attacker, and without ``tracemalloc`` (whose own bookkeeping, one trace per live block in glibc's
heap, grows the process by about as much as the node's peak itself; docs/reliability.md).

The child prints one JSON line ``{"peer_id": ..., "addr": ...}`` once it listens, then answers
each line on its stdin with one JSON line: ``measure`` (after a full garbage collection: open
descriptors, resident bytes, Python's allocated blocks, tracemalloc-tracked bytes when
``--tracemalloc`` is on, the host's listener count); diagnostics ``breakdown`` (resident memory
by kind and pymalloc's arenas), ``census [N]`` (live objects by type) and ``top [N]`` (source
lines holding the most traced memory), from ``memory.py``. It stops at the end of its stdin.

Without ``tracemalloc``, ``sys.getallocatedblocks()`` (blocks held by Python's object allocator)
is the leak check: objects that outlive an attack show up as blocks above the baseline.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs
from anyio.abc import Process
from multiaddr import Multiaddr

from p2pstack.identity import PeerId
from p2pstack.resources import LimitedResourceManager, Limits
from tests.adversarial.memory import memory_breakdown, object_census, traced_top
from tests.adversarial.node import Baseline, open_node

__all__ = ["NodeProcess", "open_node_process", "read_proc"]

_ROOT = Path(__file__).resolve().parents[2]
#: Bound on every exchange with the child (start-up includes the imports).
_START_TIMEOUT = 60.0
_REPLY_TIMEOUT = 15.0


def read_proc(pid: int | str = "self") -> tuple[int, int]:
    """Open descriptors and resident bytes of process ``pid`` (from ``/proc``).

    Returns:
        ``(fds, rss)``.
    """
    with open(f"/proc/{pid}/statm") as statm:
        rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return len(os.listdir(f"/proc/{pid}/fd")), rss


def _measure_child(listeners: int) -> dict[str, int]:
    gc.collect()
    fds, rss = read_proc()
    traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
    blocks = sys.getallocatedblocks()
    return {"fds": fds, "rss": rss, "blocks": blocks, "traced": traced, "listeners": listeners}


async def _readline(buffer: bytearray) -> bytes | None:
    """One line of stdin without a worker thread (a thread's stack would count in the RSS)."""
    fd = sys.stdin.fileno()
    while b"\n" not in buffer:
        await anyio.wait_readable(fd)
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


def _per_ip_manager() -> LimitedResourceManager:
    return LimitedResourceManager(Limits(exempt_loopback=False))


async def _serve(args: argparse.Namespace) -> None:
    # The loopback exemption is the default; without it, the same limits as the in-process
    # per-IP tests (test_floods.py before the node moved out).
    manager = None if args.exempt_loopback else _per_ip_manager()
    async with open_node(resource_manager=manager) as host:
        hello = {"peer_id": str(host.peer_id), "addr": str(host.addrs[0])}
        print(json.dumps(hello), flush=True)
        buffer = bytearray()
        while (line := await _readline(buffer)) is not None:
            command = line.strip().decode(errors="replace")
            if command == "measure":
                reply: object = _measure_child(host.statistics().listeners)
            elif command == "breakdown":
                reply = memory_breakdown()
            elif command.startswith("top"):
                reply = traced_top(int(command.partition(" ")[2] or 30))
            elif command.startswith("census"):
                reply = object_census(int(command.partition(" ")[2] or 30))
            else:
                reply = {"error": f"unknown command {line!r}"}
            print(json.dumps(reply), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exempt-loopback", choices=["yes", "no"], default="yes")
    parser.add_argument("--tracemalloc", action="store_true", help="trace Python allocations")
    args = parser.parse_args(argv)
    args.exempt_loopback = args.exempt_loopback == "yes"
    if args.tracemalloc:
        tracemalloc.start()
    anyio.run(_serve, args, backend="asyncio")


@attrs.define
class NodeProcess:
    """The test's handle on a node running in a child process."""

    process: Process
    peer_id: PeerId
    addrs: list[Multiaddr]
    _pending: bytearray = attrs.field(factory=bytearray)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def _line(self, timeout: float) -> bytes:
        assert self.process.stdout is not None
        with anyio.fail_after(timeout):
            while b"\n" not in self._pending:
                self._pending += await self.process.stdout.receive()
        line, _, rest = bytes(self._pending).partition(b"\n")
        self._pending[:] = rest
        return line

    async def query(self, command: str) -> dict[str, Any]:
        """Send ``command`` and return the child's JSON reply (bounded in time)."""
        assert self.process.stdin is not None
        await self.process.stdin.send(command.encode() + b"\n")
        reply = json.loads(await self._line(_REPLY_TIMEOUT))
        assert "error" not in reply, reply
        return dict(reply)

    async def measure(self) -> Baseline:
        """The child's descriptors and memory, after a full garbage collection in it."""
        got = await self.query("measure")
        return Baseline(**{key: int(got[key]) for key in ("fds", "traced", "rss", "blocks")})

    async def listeners(self) -> int:
        return int((await self.query("measure"))["listeners"])

    def sample(self) -> tuple[int, int]:
        """Descriptors and resident bytes now, read from ``/proc`` (no garbage collection)."""
        return read_proc(self.pid)


async def open_node_process(*, exempt_loopback: bool = True, traced: bool = False) -> NodeProcess:
    """Start the node in a child process and wait until it listens.

    Args:
        exempt_loopback: the resource manager's loopback exemption from the per-IP limits.
        traced: run the child with ``tracemalloc`` (diagnostics: its RSS then includes
            tracemalloc's own bookkeeping).

    Returns:
        The handle; close it with ``close_node_process``.

    Raises:
        TimeoutError: the child did not listen in time.
    """
    argv = [sys.executable, "-m", "tests.adversarial.node_proc"]
    argv += ["--exempt-loopback", "yes" if exempt_loopback else "no"]
    argv += ["--tracemalloc"] if traced else []
    path = os.pathsep.join([str(_ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("PYTHONTRACEMALLOC", None)
    process = await anyio.open_process(argv, cwd=_ROOT, env=env, stderr=None)
    pending = bytearray()
    try:
        assert process.stdout is not None
        with anyio.fail_after(_START_TIMEOUT):
            while b"\n" not in pending:
                pending += await process.stdout.receive()
    except BaseException:
        process.kill()
        raise
    line, _, rest = bytes(pending).partition(b"\n")
    hello = json.loads(line)
    peer = PeerId.from_string(hello["peer_id"])
    return NodeProcess(process, peer, [Multiaddr(hello["addr"])], bytearray(rest))


async def close_node_process(node: NodeProcess) -> None:
    """End the child: close its stdin, wait (bounded), kill it if it does not stop."""
    with anyio.CancelScope(shield=True):
        assert node.process.stdin is not None
        await node.process.stdin.aclose()
        with anyio.move_on_after(10.0):
            await node.process.wait()
            return
        node.process.kill()
        await node.process.wait()


__all__ += ["close_node_process"]

if __name__ == "__main__":
    main()
