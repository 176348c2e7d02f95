"""The built-in simulation workloads: ``identify`` (identify on every connection, completions
counted) and ``ping`` (periodic pings of connected peers, RTTs and failures measured and
plotted)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import attrs

from p2pstack.host import Host
from p2pstack.identity import PeerId
from p2pstack.interfaces import Service
from p2pstack.roots.scenarios._plots import new_plot, save_plot, sensible_y
from p2pstack.roots.scenarios._workload import (
    NET_ERRORS,
    MetricValue,
    NodeInfo,
    SimContext,
    WorkloadType,
    error_name,
    register_workload,
)
from protocols.identify import Identify, PeerIdentified
from protocols.ping import Ping

__all__ = ["SIM_EPOCH", "IdentifyConfig", "IdentifyWorkload", "PingConfig", "PingWorkload"]

#: Wall-clock seconds the peer records' sequence numbers start from (identify needs a clock
#: that looks like Unix time; virtual time is added to it).
SIM_EPOCH = 1_700_000_000.0


@attrs.frozen(kw_only=True)
class IdentifyConfig:
    """``[identify]``: no settings yet."""


class IdentifyWorkload:
    """Runs identify on every node and counts completed exchanges."""

    def __init__(self, config: IdentifyConfig, sim: SimContext) -> None:
        self.config = config
        self.sim = sim
        #: Virtual times of completed identify exchanges.
        self.completions: list[float] = []

    def services(self, node: NodeInfo) -> Sequence[Service]:
        return [Identify(clock=lambda: SIM_EPOCH + anyio.current_time())]

    async def run_node(self, index: int) -> None:
        return

    def on_event(self, index: int, event: object) -> None:
        if isinstance(event, PeerIdentified) and not self.sim.ended:
            self.completions.append(anyio.current_time())
            self.sim.trace.record(
                "identified",
                node=index,
                peer=self.sim.node_of(event.peer_id),
                protos=len(event.protocols),
            )

    def metrics(self) -> Mapping[str, MetricValue]:
        return {"identify_completions": len(self.completions)}

    def summary_rows(self) -> Sequence[tuple[str, str]]:
        return [("identify completions", str(len(self.completions)))]

    def plot(self, out_dir: Path, title: str) -> Sequence[Path]:
        return []


@attrs.frozen(kw_only=True)
class PingConfig:
    """``[ping]``: every ``interval`` seconds (0: never) each node pings ``targets`` of its
    connected peers (``0``: all of them) with ``timeout``."""

    interval: float = 10.0
    targets: int = 0
    timeout: float = 5.0


class PingWorkload:
    """Periodic pings; records each RTT (seconds) or failure with its start time."""

    def __init__(self, config: PingConfig, sim: SimContext) -> None:
        self.config = config
        self.sim = sim
        #: (start time, RTT in seconds or None for a failure), one per ping.
        self.pings: list[tuple[float, float | None]] = []

    def services(self, node: NodeInfo) -> Sequence[Service]:
        return [Ping(random_bytes=node.rng.child("ping").random_bytes, clock=anyio.current_time)]

    async def run_node(self, index: int) -> None:
        cfg = self.config
        if cfg.interval <= 0:
            return
        rng = self.sim.rng.child(f"ping/{index}")
        await anyio.sleep(cfg.interval * (1.0 + rng.random()))
        while True:
            host = self.sim.host(index)
            if host is not None:
                peers = list(dict.fromkeys(c.remote_peer for c in host.connections()))
                if cfg.targets and len(peers) > cfg.targets:
                    peers = rng.sample(peers, cfg.targets)
                for peer in peers:
                    await self._ping(index, host, peer)
            await anyio.sleep(cfg.interval)

    async def _ping(self, index: int, host: Host, peer: PeerId) -> None:
        target = self.sim.node_of(peer)
        now = anyio.current_time()
        try:
            rtt = (await host.service(Ping).ping(peer, timeout=self.config.timeout))[0]
        except NET_ERRORS as exc:
            if self.sim.ended:  # the teardown reset the connection
                return
            self.pings.append((now, None))
            self.sim.trace.record("ping_failed", node=index, peer=target, err=error_name(exc))
            return
        if self.sim.ended:
            return
        self.pings.append((now, rtt))
        self.sim.trace.record("ping", node=index, peer=target, rtt=round(rtt, 9))

    def on_event(self, index: int, event: object) -> None:
        return

    def pings_between(self, start: float, end: float) -> tuple[int, int]:
        """(succeeded, failed) pings started in ``[start, end)``."""
        window = [rtt for t, rtt in self.pings if start <= t < end]
        ok = sum(1 for rtt in window if rtt is not None)
        return ok, len(window) - ok

    def _rtts_ms(self) -> list[float]:
        return sorted(r * 1000 for _, r in self.pings if r is not None)

    def metrics(self) -> Mapping[str, MetricValue]:
        rtts = self._rtts_ms()

        def pct(p: float) -> float | None:
            return round(rtts[min(len(rtts) - 1, int(p * len(rtts)))], 6) if rtts else None

        return {
            "pings_ok": len(rtts),
            "pings_failed": len(self.pings) - len(rtts),
            "ping_rtt_p50_ms": pct(0.5),
            "ping_rtt_p95_ms": pct(0.95),
            "ping_rtt_max_ms": pct(1.0),
        }

    def summary_rows(self) -> Sequence[tuple[str, str]]:
        m = self.metrics()

        def ms(key: str) -> str:
            value = m[key]
            return f"{value:.2f} ms" if isinstance(value, float) else "-"

        return [
            ("pings ok / failed", f"{m['pings_ok']} / {m['pings_failed']}"),
            (
                "ping RTT p50 / p95 / max",
                f"{ms('ping_rtt_p50_ms')} / {ms('ping_rtt_p95_ms')} / {ms('ping_rtt_max_ms')}",
            ),
        ]

    def plot(self, out_dir: Path, title: str) -> Sequence[Path]:
        fig, ax = new_plot()
        ok = [(t, rtt * 1000) for t, rtt in self.pings if rtt is not None]
        failed = [t for t, rtt in self.pings if rtt is None]
        ax.scatter([t for t, _ in ok], [r for _, r in ok], s=2, label="RTT")
        top = max((r for _, r in ok), default=1.0)
        if failed:
            ax.scatter(failed, [top * 1.05] * len(failed), s=6, marker="x", color="red")
            ax.scatter([], [], s=6, marker="x", color="red", label="failed (drawn at the top)")
        # A flat 40 ms series spans 0..44 ms, never a magnified ±1e-11 band.
        sensible_y(ax, [r for _, r in ok] + ([top * 1.05] if failed else []), min_span=1.0)
        ax.set_ylabel("round-trip time (ms)")
        return [save_plot(fig, ax, out_dir / "pings.png", f"{title}: pings")]


register_workload(WorkloadType("identify", IdentifyConfig, IdentifyWorkload))
register_workload(WorkloadType("ping", PingConfig, PingWorkload))
