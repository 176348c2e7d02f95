"""Load sharing over gossip membership: workers join a SWIM cluster, gossip their queue length
as their ``load``, and a submitter sends each task to the less loaded of two random workers
(power of two choices over the gossiped load). Mid-run one worker is killed: the tasks it had
queued or was running fail on their streams and are re-routed to the others.

Everything runs in one process over TCP on 127.0.0.1 (one host per worker, one for the
submitter)::

    .venv/bin/python examples/work_queue.py --workers 4 --tasks 80

A task is one length-prefixed JSON request ``{"id": N, "work": SECONDS}`` on a
``/p2pstack/example/task/1.0.0`` stream; the worker queues it, sleeps ``work`` seconds when its
turn comes, and answers ``{"id": N, "worker": PEER_ID}`` on the same stream. The run is bounded
by ``--deadline``; the exit status is 0 only if every task completed.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections import Counter

import anyio
import anyio.abc

from p2pstack import Host
from p2pstack.errors import NETWORK_ERRORS
from p2pstack.framing import read_lp, write_lp
from p2pstack.host import Stream
from p2pstack.identity import PeerId
from p2pstack.roots.defaults import open_default_host
from protocols.identify import Identify
from protocols.membership import Membership, MemberState, MemberSuspected, SwimConfig

TASK_PROTOCOL = "/p2pstack/example/task/1.0.0"
#: Fast SWIM timers for a short demo on loopback (memberlist's LAN values are 5x slower).
CONFIG = SwimConfig(probe_interval=0.2, probe_timeout=0.1, gossip_interval=0.05)
MAX_FRAME = 1024
#: Seconds a worker whose task stream failed is not picked.
SKIP_FAILED = 1.0
#: Seconds the summary waits for the membership to report the killed worker gone.
KILL_NOTICE = 10.0
ERRORS: tuple[type[BaseException], ...] = (TimeoutError, ValueError, *NETWORK_ERRORS)


class Worker:
    """Serves tasks one at a time from a queue and gossips the queue length as its load."""

    def __init__(self, membership: Membership) -> None:
        self.membership = membership
        self.peer_id: PeerId | None = None
        self.queued = 0
        self.done = 0
        self._turn = anyio.Lock()
        self._streams: set[Stream] = set()

    def _publish_load(self) -> None:
        self.membership.set_metadata(load=float(self.queued))

    async def crash(self) -> None:
        """Lose the queue: reset every task stream (their submitter re-routes them)."""
        for stream in list(self._streams):
            await stream.reset()

    async def handle(self, stream: Stream) -> None:
        self._streams.add(stream)
        try:
            await self._serve(stream)
        finally:
            self._streams.discard(stream)

    async def _serve(self, stream: Stream) -> None:
        with anyio.fail_after(10):
            request = json.loads(await read_lp(stream, max_size=MAX_FRAME))
        work = min(max(float(request["work"]), 0.0), 1.0)
        self.queued += 1
        self._publish_load()
        try:
            async with self._turn:  # one task at a time: the rest wait in line
                await anyio.sleep(work)
        finally:
            self.queued -= 1
            self._publish_load()
        self.done += 1
        reply = {"id": request["id"], "worker": str(self.peer_id)}
        await write_lp(stream, json.dumps(reply).encode())


async def run_worker(
    seed_addr: str | None,
    kill: anyio.Event,
    *,
    task_status: anyio.abc.TaskStatus[tuple[Host, Worker]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """One worker host; it closes (killed) when ``kill`` is set."""
    membership = Membership(config=CONFIG)
    worker = Worker(membership)
    async with open_default_host(
        listen=["/ip4/127.0.0.1/tcp/0"], services=[Identify(), membership]
    ) as host:
        worker.peer_id = host.peer_id
        host.set_stream_handler(
            TASK_PROTOCOL, worker.handle, max_inbound=1024, max_inbound_per_peer=1024
        )
        if seed_addr is not None:
            await membership.join(seed_addr)
        task_status.started((host, worker))
        await kill.wait()
        await worker.crash()


class Submitter:
    """Spreads tasks over the workers the membership shows alive, re-routing failed ones."""

    def __init__(self, host: Host, rng: random.Random) -> None:
        self.host = host
        self.membership = host.service(Membership)
        self.rng = rng
        self.completed: dict[int, str] = {}
        self.rerouted = 0
        self.errors: Counter[str] = Counter()
        self.suspicions = 0
        host.events.on(MemberSuspected, self._suspected)
        #: Workers whose task stream failed, and when: skipped for ``SKIP_FAILED`` seconds,
        #: by which time the membership has declared them gone if they are.
        self.failed_at: dict[PeerId, float] = {}

    def _suspected(self, _event: MemberSuspected) -> None:
        self.suspicions += 1

    def pick(self) -> PeerId | None:
        """Power of two choices over the gossiped load, skipping workers that just failed us
        (the membership may not have declared them dead yet)."""
        now = anyio.current_time()
        for _ in range(8):
            peer = self.membership.pick_member_by_load()
            if peer is not None and not self._skipped(peer, now):
                return peer
        live = [p for p in self.membership.live_members() if not self._skipped(p, now)]
        return self.rng.choice(live) if live else None

    def _skipped(self, peer: PeerId, now: float) -> bool:
        return now - self.failed_at.get(peer, -math.inf) < SKIP_FAILED

    async def submit(self, task_id: int, work: float) -> None:
        while True:
            peer = self.pick()
            if peer is None:
                await anyio.sleep(0.05)
                continue
            try:
                with anyio.fail_after(10):
                    stream = await self.host.new_stream(peer, TASK_PROTOCOL)
                    async with stream:
                        await write_lp(stream, json.dumps({"id": task_id, "work": work}).encode())
                        reply = json.loads(await read_lp(stream, max_size=MAX_FRAME))
            except ERRORS as exc:
                self.errors[type(exc).__name__] += 1
                self.failed_at[peer] = anyio.current_time()
                self.rerouted += 1
                continue
            self.completed[task_id] = str(reply["worker"])
            return


async def main(args: argparse.Namespace) -> int:
    """Start the workers, run the tasks, print the summary; 0 if every task completed."""
    rng = random.Random(args.seed)
    kills = [anyio.Event() for _ in range(args.workers)]
    async with anyio.create_task_group() as tg:
        first_host, first = await tg.start(run_worker, None, kills[0])
        seed_addr = str(first_host.addrs[0])
        workers = [first]
        try:
            for kill in kills[1:]:
                workers.append((await tg.start(run_worker, seed_addr, kill))[1])
            summary = await submit_all(args, rng, seed_addr, workers, kills)
        finally:
            for kill in kills:
                kill.set()
    print(json.dumps(summary) if args.json else _text(summary), flush=True)
    return 0 if summary["completed"] == args.tasks else 1


async def submit_all(
    args: argparse.Namespace,
    rng: random.Random,
    seed_addr: str,
    workers: list[Worker],
    kills: list[anyio.Event],
) -> dict[str, object]:
    """Join as the submitter, run ``args.tasks`` tasks (killing ``args.kill`` a third of the
    way), and summarise."""
    names = {w.peer_id: f"worker-{i}" for i, w in enumerate(workers)}
    async with open_default_host(
        listen=["/ip4/127.0.0.1/tcp/0"], services=[Identify(), Membership(config=CONFIG)]
    ) as host:
        submitter = Submitter(host, rng)
        await submitter.membership.join(seed_addr)
        victim = args.kill if 0 <= args.kill < len(workers) else None
        started = anyio.current_time()
        with anyio.move_on_after(args.deadline):
            async with anyio.create_task_group() as tasks:
                limit = anyio.Semaphore(args.parallel)
                for task_id in range(args.tasks):
                    await limit.acquire()
                    work = rng.uniform(0.5, 1.5) * args.work
                    tasks.start_soon(_one, submitter, task_id, work, limit)
                    if task_id == args.tasks // 3 and victim is not None:
                        tasks.start_soon(_kill, workers[victim], kills[victim])
        elapsed = anyio.current_time() - started
        killed = None if victim is None else workers[victim].peer_id
        if killed is not None:
            # The re-routed tasks can finish before the leave (or the failure) has reached the
            # submitter: give the membership a bounded moment to report it.
            for _ in range(int(KILL_NOTICE / 0.05)):
                seen = submitter.membership.member(killed)
                if seen is not None and seen.state is not MemberState.ALIVE:
                    break
                await anyio.sleep(0.05)
        seen = None if killed is None else submitter.membership.member(killed)
        per_worker = Counter(
            names.get(PeerId.from_string(p), p) for p in submitter.completed.values()
        )
        return {
            "tasks": args.tasks,
            "completed": len(submitter.completed),
            "rerouted": submitter.rerouted,
            "reroute_causes": dict(submitter.errors),
            "killed": None if killed is None else names[killed],
            "killed_state": None if seen is None else seen.state.name.lower(),
            "per_worker": dict(sorted(per_worker.items())),
            "view": {
                names.get(m.peer_id, str(m.peer_id)): m.state.name.lower()
                for m in submitter.membership.members()
            },
            "elapsed_s": round(elapsed, 2),
            "suspicions": submitter.suspicions,
        }


async def _kill(worker: Worker, kill: anyio.Event) -> None:
    """Kill ``worker`` as soon as it has tasks queued (within a second)."""
    with anyio.move_on_after(1.0):
        while True:
            if worker.queued >= 2:
                break
            await anyio.sleep(0.005)
    kill.set()


async def _one(submitter: Submitter, task_id: int, work: float, limit: anyio.Semaphore) -> None:
    try:
        await submitter.submit(task_id, work)
    finally:
        limit.release()


def _text(summary: dict[str, object]) -> str:
    lines = [f"{k}: {v}" for k, v in summary.items()]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--workers", type=int, default=4, help="worker hosts (default: 4)")
    p.add_argument("--tasks", type=int, default=80, help="tasks to run (default: 80)")
    p.add_argument("--work", type=float, default=0.05, help="mean seconds per task (0.05)")
    p.add_argument("--parallel", type=int, default=8, help="tasks in flight at once (8)")
    p.add_argument("--kill", type=int, default=0, help="index of the worker killed (-1: none)")
    p.add_argument("--deadline", type=float, default=60.0, help="bound of the run (60 s)")
    p.add_argument("--seed", type=int, default=1, help="seed of the task sizes")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    args = p.parse_args(argv)
    if args.workers < 2 or args.tasks < 1 or args.parallel < 1 or not math.isfinite(args.work):
        p.error("need --workers >= 2, --tasks >= 1, --parallel >= 1 and a finite --work")
    return args


if __name__ == "__main__":
    sys.exit(anyio.run(main, parse_args()))
