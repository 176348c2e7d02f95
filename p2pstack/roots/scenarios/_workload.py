"""Simulation workloads: what the simulated nodes do besides connecting. Each workload supplies
its services per node, its TOML table, its activity, its ``metrics.json`` keys, its summary rows
and its plots, so a protocol adds scenarios by registering a workload, not by editing the runner
(docs/simulation.md, "Workloads").

A workload is named in a scenario's ``services`` list; its settings are the top-level TOML table
of the same name (``[ping]``), parsed into its ``config_type`` (a frozen, keyword-only attrs
class whose fields are the table's keys).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import attrs

from p2pstack.errors import NETWORK_ERRORS

if TYPE_CHECKING:
    from p2pstack.host import Host
    from p2pstack.identity import PeerId
    from p2pstack.interfaces import Service
    from p2pstack.sim import SeededRandom, TraceRecorder
    from transports.simnet import SimNetwork

__all__ = [
    "NET_ERRORS",
    "WORKLOADS",
    "MetricValue",
    "NodeInfo",
    "NodeStarted",
    "NodeStopped",
    "SimContext",
    "Workload",
    "WorkloadType",
    "error_name",
    "register_workload",
]

#: Errors a dial or a request may end with because of the (simulated) network: the public
#: :data:`p2pstack.errors.NETWORK_ERRORS` (``TimeoutError`` is an ``OSError``, so included).
NET_ERRORS: tuple[type[BaseException], ...] = NETWORK_ERRORS

#: A value of ``metrics.json``: a number, a string (names, hashes), a flag, or None (no data).
MetricValue = int | float | str | bool | None


@attrs.frozen
class NodeInfo:
    """One run of one node (a restart is a new generation).

    Attributes:
        index: the node's number, 1..N.
        generation: 0 for the first start, +1 per restart.
        rng: this run's random source; derive a child per use (``rng.child("ping")``).
    """

    index: int
    generation: int
    rng: SeededRandom


@attrs.frozen
class NodeStarted:
    """Passed to every workload's ``on_event`` when a node's host is up (at each start and
    restart, before any of that host's own events).

    Attributes:
        index: the node's number.
        generation: 0 for the first start, +1 per restart.
        host: the running host.
    """

    index: int
    generation: int
    host: Host


@attrs.frozen
class NodeStopped:
    """Passed to every workload's ``on_event`` when a node goes down (crash, replacement).

    Attributes:
        index: the node's number.
        generation: the generation that stopped.
    """

    index: int
    generation: int


class SimContext(Protocol):
    """What the runner offers workloads (all on the virtual clock, inside the run)."""

    @property
    def ended(self) -> bool:
        """True once the scenario's duration is over (teardown failures are not results)."""
        ...

    @property
    def trace(self) -> TraceRecorder:
        """The run's trace; record events in a deterministic order only."""
        ...

    @property
    def rng(self) -> SeededRandom:
        """The run's root random source (use a labelled child)."""
        ...

    @property
    def node_indexes(self) -> Sequence[int]:
        """Every node number, 1..N."""
        ...

    def host(self, index: int) -> Host | None:
        """The running host of node ``index``, None while it is down."""
        ...

    def node_of(self, peer: PeerId) -> int:
        """The node number of a peer ID (0 if unknown)."""
        ...

    def dial_address(self, index: int) -> str | None:
        """The address others dial node ``index`` at, with ``/p2p/<its peer ID>``; None while
        it is down."""
        ...

    @property
    def network(self) -> SimNetwork:
        """The simulated network (its NAT boxes, transports and datagram sockets), for
        workloads that work below the hosts (the ``nat_traversal`` workload)."""
        ...


class Workload(Protocol):
    """One run's instance of a workload. Every method is called inside the virtual loop except
    ``metrics``, ``summary_rows`` and ``plot``, which are called after the run (also after an
    interrupted one)."""

    def services(self, node: NodeInfo) -> Sequence[Service]:
        """The services to add to this node's host (called at each start)."""
        ...

    async def run_node(self, index: int) -> None:
        """The activity of node ``index`` for the whole run (started once per node after
        every node is up; cancelled at the end). Return at once if there is none."""
        ...

    def on_event(self, index: int, event: object) -> None:
        """A host event of node ``index`` (synchronous; must not block)."""
        ...

    def metrics(self) -> Mapping[str, MetricValue]:
        """Flat ``metrics.json`` entries: snake_case keys, numbers as numbers, units in names
        (``_ms``, ``_seconds``); keys must not collide with other workloads'."""
        ...

    def summary_rows(self) -> Sequence[tuple[str, str]]:
        """Rows of the human summary (``summary.txt``)."""
        ...

    def plot(self, out_dir: Path, title: str) -> Sequence[Path]:
        """Write this workload's PNG plots into ``out_dir``; return their paths."""
        ...


class WorkloadType(NamedTuple):
    """A registered workload.

    Attributes:
        name: the ``services`` entry and the TOML table name.
        config_type: the settings class (frozen, keyword-only attrs; defaults for every field).
        factory: builds one run's workload from its settings and the run's context.
    """

    name: str
    config_type: type[Any]
    factory: Callable[[Any, SimContext], Workload]


#: Scenario keys a workload table must not shadow.
_RESERVED = frozenset(
    {"name", "nodes", "duration", "seed", "security", "muxer", "services", "sample_interval"}
    | {"network", "bootstrap", "timeline"}
)
#: Registered workloads by name.
WORKLOADS: dict[str, WorkloadType] = {}


def register_workload(workload: WorkloadType) -> None:
    """Make a workload available to scenarios.

    Args:
        workload: the workload; its name must be new and must not be a scenario key.

    Raises:
        ValueError: the name is taken.
    """
    if workload.name in WORKLOADS or workload.name in _RESERVED:
        raise ValueError(f"workload name {workload.name!r} is already taken")
    WORKLOADS[workload.name] = workload


def error_name(exc: BaseException) -> str:
    """A deterministic description of a failure for the trace: its type, and the inner type of
    a dial error.

    Args:
        exc: the failure.

    Returns:
        ``"Type"`` or ``"DialError:InnerType"``.
    """
    errors = getattr(exc, "errors", None)
    if errors:
        return f"{type(exc).__name__}:{type(errors[0][1]).__name__}"
    return type(exc).__name__
