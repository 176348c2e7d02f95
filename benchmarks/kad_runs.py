"""The two DHT measurements, each over real processes on 127.0.0.1: FIND_NODE requests served per
second by one DHT server under concurrent clients, and put + get latency on a small network of
one implementation's nodes. benchmarks/kad.py runs them and prints the report."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Sequence
from typing import IO, Any

from benchmarks.kad_procs import NAMESPACE, DhtPeer, Event, close_all, run_load

#: (server, load generator): each against itself, then every server under p2pstack's load.
PAIRS = [
    ("p2pstack", "p2pstack"),
    ("js", "js"),
    ("py", "py"),
    ("js", "p2pstack"),
    ("py", "p2pstack"),
]
#: Nodes of a latency network started at once.
START_BATCH = 4
#: Seconds the harness waits for one command (above the peers' own 120 s bound).
COMMAND_TIMEOUT = 150.0


class Served:
    """A DHT server whose routing table holds ``fillers`` real DHT peers (one p2pstack process
    of many hosts that joined through the server, each then also dialed by the server)."""

    def __init__(self, kind: str, fillers: int, log: IO[str]) -> None:
        self.kind = kind
        self.server = DhtPeer(kind, log=log)
        self.filler: DhtPeer | None = None
        try:
            self.server.wait_ready()
            self.filler = DhtPeer("p2pstack", bootstrap=[self.server.addr], hosts=fillers, log=log)
            ready = self.filler.wait_ready(timeout=60 + 3 * fillers)
            # js learns DHT servers from identify, py only from its own requests or by hand;
            # dialing every filler puts them all in every kind of table the same way.
            for addr in ready["addrs"]:
                self.server.command(f"connect {addr}")
            self.table = len(self.server.command("table")[0]["peers"])
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the filler and the server."""
        if self.filler is not None:
            self.filler.close()
        self.server.close()


def throughput(
    kinds: Sequence[str],
    *,
    reps: int,
    clients: int,
    warmup: float,
    seconds: float,
    fillers: int,
    log: IO[str],
) -> tuple[dict[str, list[Event]], dict[str, int]]:
    """FIND_NODE load on each server, ``reps`` rounds (fresh servers each), the pairs
    interleaved within a round.

    Returns:
        Samples by ``"server<-loader"`` (``load`` events, or ``{"error": ...}``), and the
        routing-table size of each server.
    """
    pairs = [(s, lo) for s, lo in PAIRS if s in kinds and lo in kinds]
    samples: dict[str, list[Event]] = {}
    tables: dict[str, int] = {}
    for rep in range(1, reps + 1):
        # Fresh servers each round: py-libp2p's server stops answering FIND_NODE once the
        # addresses of its table's peers expire from its peerstore (a few minutes).
        servers: dict[str, Served] = {}
        try:
            for kind in dict.fromkeys(s for s, _ in pairs):
                print(f"  rep {rep}: filling the {kind} server's table", flush=True)
                servers[kind] = Served(kind, fillers, log)
                tables[kind] = servers[kind].table
            for server, loader in pairs:
                name = f"{server}<-{loader}"
                try:
                    ev = run_load(
                        loader,
                        servers[server].server,
                        clients=clients,
                        warmup=warmup,
                        seconds=seconds,
                        log=log,
                    )
                except (RuntimeError, TimeoutError) as exc:  # one failed sample, reported
                    ev = {"error": str(exc)[:300]}
                samples.setdefault(name, []).append(ev)
                rate = ev.get("per_second")
                shown = f"{rate:,.0f} req/s" if rate is not None else ev.get("error")
                print(f"  rep {rep} {name}: {shown}", flush=True)
        finally:
            for s in servers.values():
                s.close()
    return samples, tables


def _pick(rng: random.Random, n: int) -> tuple[int, int]:
    a = rng.randrange(n)
    b = rng.randrange(n - 1)
    return a, b + (b >= a)


def join_network(kind: str, nodes: int, log: IO[str]) -> list[DhtPeer]:
    """``nodes`` DHT servers of ``kind``: the first alone, the rest bootstrapped from it, then
    two rounds of self lookups so that every table holds the others."""
    first = DhtPeer(kind, log=log)
    peers = [first]
    try:
        first.wait_ready(timeout=120)
        while len(peers) < nodes:
            # A few at a time: twenty runtimes starting at once on a small machine starve the
            # first node until the joiners' dials time out.
            batch = [
                DhtPeer(kind, bootstrap=[first.addr], log=log)
                for _ in range(min(START_BATCH, nodes - len(peers)))
            ]
            peers += batch
            for p in batch:
                p.wait_ready(timeout=120)
        for p in peers[1:]:
            p.command("bootstrap", timeout=COMMAND_TIMEOUT)
        for p in peers:
            p.command("bootstrap", timeout=COMMAND_TIMEOUT)
    except BaseException:
        close_all(peers)
        raise
    return peers


def latency(
    kind: str, *, nodes: int, ops: int, budget: float, seed: int, log: IO[str]
) -> dict[str, Any]:
    """``ops`` times (or until ``budget`` seconds have gone): put a fresh key from one random
    node, get it from another.

    Returns:
        ``put_ms`` / ``get_ms`` lists (as seen by the harness through the peers' stdin and
        stdout), ``gets_ok`` (right value back), ``stored_at`` (as each peer reports it),
        ``table_sizes``, ``errors``.
    """
    rng = random.Random(seed)
    peers = join_network(kind, nodes, log)
    out: dict[str, Any] = {"put_ms": [], "get_ms": [], "gets_ok": 0, "stored_at": [], "errors": []}
    try:
        out["table_sizes"] = [len(p.command("table")[0]["peers"]) for p in peers]
        deadline = time.monotonic() + budget
        for i in range(ops):
            if time.monotonic() > deadline:
                out["budget_hit"] = True
                break
            a, b = _pick(rng, nodes)
            key, value = f"/{NAMESPACE}/{seed}-{i}", f"v{i}-{rng.getrandbits(32):08x}"
            try:
                put, put_s = peers[a].command(f"put {key} {value}", timeout=COMMAND_TIMEOUT)
                got, get_s = peers[b].command(f"get {key}", timeout=COMMAND_TIMEOUT)
                if kind == "p2pstack" and nodes > 2:
                    # Also from a third node with quorum 1: the first value found, as py does.
                    c = next(i for i in rng.sample(range(nodes), 3) if i not in (a, b))
                    got1, get1_s = peers[c].command(f"get {key} 1")
                    out.setdefault("get_q1_ms", []).append(get1_s * 1000)
                    out["gets_q1_ok"] = out.get("gets_q1_ok", 0) + (got1.get("value") == value)
            except (RuntimeError, TimeoutError) as exc:  # counted, the run goes on
                out["errors"].append(str(exc)[:200])
                continue
            out["put_ms"].append(put_s * 1000)
            out["get_ms"].append(get_s * 1000)
            out["stored_at"].append(put.get("stored_at"))
            out["gets_ok"] += got.get("value") == value
    finally:
        close_all(peers)
    return out


def percentile(xs: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) of ``xs``; None if empty."""
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * q))]


def median(xs: Sequence[float]) -> float | None:
    """Median of ``xs``; None if empty."""
    return statistics.median(xs) if xs else None
