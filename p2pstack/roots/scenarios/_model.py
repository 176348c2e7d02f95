"""The scenario model of the deterministic simulator: nodes, network, bootstrap, workloads
(``services`` and their tables), a timeline of faults; loaded from TOML or built in Python
(docs/simulation.md, "Scenario files")."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs

from p2pstack.roots.scenarios._workload import WORKLOADS
from transports.simnet import BEHAVIOURS, PORT_ALLOCATIONS

__all__ = [
    "ACTIONS",
    "NAT_KINDS",
    "Action",
    "BootstrapConfig",
    "NatBoxConfig",
    "NetworkConfig",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "parse_scenario",
]
T = TypeVar("T")

#: Timeline actions and the fields each takes.
ACTIONS: dict[str, tuple[str, ...]] = {
    "partition": ("groups",),
    "heal": (),
    "crash": ("node",),
    "restart": ("node", "keep_identity", "keep_peerstore"),
    "drop": ("node", "peer"),
    "nat": ("node", "reachable"),
    "replace": ("nodes", "over"),
}
#: NAT box kinds (``transports.simnet.NatSpec.of_kind``).
NAT_KINDS = (
    "full-cone",
    "restricted-cone",
    "port-restricted",
    "address-dependent",
    "symmetric",
    "firewall",
)
#: RFC 4787 mapping and filtering behaviours.
NAT_BEHAVIOURS = BEHAVIOURS
#: External port allocation of a translating box.
NAT_PORT_ALLOCATIONS = PORT_ALLOCATIONS
#: Most nodes a scenario may have: bounds memory (about 0.3 MiB per node with Noise).
MAX_NODES = 20_000


class ScenarioError(ValueError):
    """A scenario file or object is invalid (the message says where)."""


@attrs.frozen(kw_only=True)
class Action:
    """One timeline entry: at virtual time ``at``, do ``action`` (see ``ACTIONS``)."""

    at: float
    action: str
    node: int = 0
    peer: int = 0
    groups: tuple[tuple[int, ...], ...] = ()
    keep_identity: bool = True
    keep_peerstore: bool = True
    reachable: bool = False
    #: ``replace``: these nodes are each crashed and restarted as a new peer (fresh identity
    #: and peerstore), in a seeded random order, at times spread evenly over ``over`` seconds.
    nodes: tuple[int, ...] = ()
    over: float = 0.0


@attrs.frozen(kw_only=True)
class NatBoxConfig:
    """A NAT or firewall box (``[[network.nat_box]]``) in front of ``nodes``: ``kind`` in
    ``NAT_KINDS``, mapping timeouts in seconds; ``mapping``, ``filtering`` (``NAT_BEHAVIOURS``)
    and ``port_allocation`` (``NAT_PORT_ALLOCATIONS``) override the kind's when set;
    ``per_node`` puts each of ``nodes`` behind a box of its own (a home router each) instead
    of all behind one."""

    kind: str = "port-restricted"
    nodes: tuple[int, ...] = ()
    udp_timeout: float = 120.0
    tcp_timeout: float = 7440.0
    mapping: str = ""
    filtering: str = ""
    port_allocation: str = ""
    per_node: bool = False


@attrs.frozen(kw_only=True)
class NetworkConfig:
    """Link properties, addressing and reachability. Latency is one-way seconds: fixed
    (``latency``) or ``latency_dist`` in ``fixed | uniform | normal | lognormal`` with
    ``latency_b`` as the second parameter (upper bound, deviation, sigma). Nodes listen and
    dial over ``ip`` (``ip4`` or ``ip6``); ``nat`` lists nodes nobody can dial, ``nat_box``
    puts nodes behind NAT or firewall boxes. ``conn_high_water`` > 0 gives every host a
    connection manager that trims back to ``conn_low_water`` connections (peers connected for
    less than ``conn_grace`` seconds are spared): large runs bound their memory this way."""

    latency: float = 0.02
    latency_dist: str = "fixed"
    latency_b: float = 0.0
    bandwidth: float | None = None
    loss: float = 0.0
    nat: tuple[int, ...] = ()
    ip: str = "ip4"
    nat_box: tuple[NatBoxConfig, ...] = ()
    stall_timeout: float = 30.0
    dial_timeout: float = 10.0
    conn_low_water: int = 0
    conn_high_water: int = 0
    conn_grace: float = 20.0


@attrs.frozen(kw_only=True)
class BootstrapConfig:
    """Each node dials ``peers`` random others, spread over ``spread`` seconds from ``at``;
    every ``redial_interval`` seconds (0: never) it redials those it lost."""

    peers: int = 3
    at: float = 0.0
    spread: float = 1.0
    redial_interval: float = 10.0


@attrs.frozen(kw_only=True)
class Scenario:
    """A whole simulation. ``transport`` is ``tcp`` (simulated TCP, then ``security`` and
    ``muxer``) or ``quic`` (QUIC-v1 over simulated datagrams: its TLS and streams replace
    both); ``security`` is ``noise`` or ``plaintext`` (fast, insecure);
    ``services`` names registered workloads (built in: ``identify``, ``ping``), run in that
    order; ``settings`` holds their settings by name (the TOML table of the same name; a
    workload without an entry uses its defaults)."""

    name: str = "scenario"
    nodes: int = 10
    duration: float = 60.0
    seed: int = 0
    transport: str = "tcp"
    security: str = "noise"
    muxer: str = "yamux"
    services: tuple[str, ...] = ("identify", "ping")
    sample_interval: float = 1.0
    network: NetworkConfig = NetworkConfig()
    bootstrap: BootstrapConfig = BootstrapConfig()
    settings: dict[str, Any] = attrs.field(factory=dict, hash=False)
    timeline: tuple[Action, ...] = ()

    def workload_settings(self, name: str) -> Any:
        """The settings of workload ``name``: ``settings[name]`` or the workload's defaults.

        Args:
            name: a registered workload.

        Returns:
            An instance of the workload's ``config_type``.

        Raises:
            KeyError: no such workload.
        """
        config = self.settings.get(name)
        return WORKLOADS[name].config_type() if config is None else config

    def validate(self) -> Scenario:
        """Check cross-field rules.

        Returns:
            ``self``.

        Raises:
            ScenarioError: the first rule broken.
        """
        if not 1 <= self.nodes <= MAX_NODES:
            raise ScenarioError(f"nodes must be in 1..{MAX_NODES}")
        if self.duration <= 0 or self.sample_interval <= 0:
            raise ScenarioError("duration and sample_interval must be positive")
        if self.transport not in ("tcp", "quic"):
            raise ScenarioError("transport must be 'tcp' or 'quic'")
        if self.security not in ("noise", "plaintext"):
            raise ScenarioError("security must be 'noise' or 'plaintext'")
        if self.muxer not in ("yamux", "mplex"):
            raise ScenarioError("muxer must be 'yamux' or 'mplex'")
        if unknown := set(self.services) - set(WORKLOADS):
            raise ScenarioError(
                f"unknown services: {sorted(unknown)} (choose from {sorted(WORKLOADS)})"
            )
        if len(set(self.services)) != len(self.services):
            raise ScenarioError("services: each workload may be named once")
        for name, config in self.settings.items():
            workload = WORKLOADS.get(name)
            if workload is None or not isinstance(config, workload.config_type):
                raise ScenarioError(f"settings[{name!r}]: not the settings of a workload")
        if not 0.0 <= self.network.loss < 1.0:
            raise ScenarioError("network.loss must be in [0, 1)")
        if self.network.latency_dist not in ("fixed", "uniform", "normal", "lognormal"):
            raise ScenarioError("network.latency_dist: fixed, uniform, normal or lognormal")
        nodes = range(1, self.nodes + 1)
        for i, act in enumerate(self.timeline):
            where = f"timeline[{i}] ({act.action})"
            if act.action not in ACTIONS:
                raise ScenarioError(f"{where}: unknown action, choose from {sorted(ACTIONS)}")
            if act.at < 0:
                raise ScenarioError(f"{where}: 'at' must not be negative")
            if "node" in ACTIONS[act.action] and act.node not in nodes:
                raise ScenarioError(f"{where}: node must be in 1..{self.nodes}")
            if act.peer and act.peer not in nodes:
                raise ScenarioError(f"{where}: peer must be in 1..{self.nodes}")
            if any(n not in nodes for g in act.groups for n in g):
                raise ScenarioError(f"{where}: group members must be in 1..{self.nodes}")
            if any(n not in nodes for n in act.nodes) or act.over < 0:
                raise ScenarioError(f"{where}: nodes must be in 1..{self.nodes}, over >= 0")
        if any(n not in nodes for n in self.network.nat):
            raise ScenarioError(f"network.nat members must be in 1..{self.nodes}")
        net = self.network
        if not 0 <= net.conn_low_water <= net.conn_high_water or net.conn_grace < 0:
            raise ScenarioError("network: need 0 <= conn_low_water <= conn_high_water")
        self._validate_addressing(nodes)
        for name in self.services:  # workload settings that depend on the rest of the scenario
            check = getattr(self.workload_settings(name), "check_scenario", None)
            if check is not None:
                check(self)
        return self

    def _validate_addressing(self, nodes: range) -> None:
        if self.network.ip not in ("ip4", "ip6"):
            raise ScenarioError("network.ip must be 'ip4' or 'ip6'")
        seen: set[int] = set()
        for i, box in enumerate(self.network.nat_box):
            where = f"network.nat_box[{i}]"
            if box.kind not in NAT_KINDS:
                raise ScenarioError(f"{where}: kind must be one of {list(NAT_KINDS)}")
            if any(n not in nodes for n in box.nodes):
                raise ScenarioError(f"{where}: nodes must be in 1..{self.nodes}")
            if twice := seen.intersection(box.nodes):
                raise ScenarioError(f"{where}: nodes {sorted(twice)} are behind another box")
            if box.udp_timeout <= 0 or box.tcp_timeout <= 0:
                raise ScenarioError(f"{where}: timeouts must be positive")
            for key in ("mapping", "filtering"):
                if getattr(box, key) not in ("", *NAT_BEHAVIOURS):
                    raise ScenarioError(f"{where}: {key} must be one of {list(NAT_BEHAVIOURS)}")
            if box.port_allocation not in ("", *NAT_PORT_ALLOCATIONS):
                raise ScenarioError(
                    f"{where}: port_allocation must be one of {list(NAT_PORT_ALLOCATIONS)}"
                )
            seen.update(box.nodes)


def _nodes(value: object, where: str) -> tuple[int, ...]:
    """A node list: ``[1, 2, 3]`` or ``"1-3"`` or a mix (``[1, "5-7"]``)."""
    items = value if isinstance(value, list) else [value]
    out: list[int] = []
    for item in items:
        if isinstance(item, bool):
            raise ScenarioError(f"{where}: expected node numbers")
        if isinstance(item, int):
            out.append(item)
        elif isinstance(item, str) and "-" in item:
            lo, _, hi = item.partition("-")
            try:
                out.extend(range(int(lo), int(hi) + 1))
            except ValueError:
                raise ScenarioError(f"{where}: bad range {item!r}") from None
        else:
            raise ScenarioError(f"{where}: expected node numbers or 'a-b' ranges")
    return tuple(out)


def _build(cls: type[T], data: object, where: str, **converted: object) -> T:
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{where}: expected a table")
    fields = attrs.fields_dict(cls)  # type: ignore[arg-type]  # every model class is attrs
    kwargs: dict[str, object] = {}
    for key, value in data.items():
        if key not in fields:
            raise ScenarioError(f"{where}: unknown key {key!r}")
        if key in converted:
            continue
        expected = fields[key].type
        kwargs[key] = _coerce(value, str(expected), f"{where}.{key}")
    kwargs.update({k: v for k, v in converted.items() if k in data})
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def _coerce(value: object, expected: str, where: str) -> object:
    """Check a TOML value against an annotation string of the model (``float``, ``int``, ...)."""
    if "tuple[str" in expected:
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ScenarioError(f"{where}: expected a list of strings")
        return tuple(value)
    if "tuple[int" in expected:
        return _nodes(value, where)
    if expected.startswith("float"):
        if value is None and "None" in expected:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(f"{where}: expected a number")
        return float(value)
    if expected == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{where}: expected an integer")
        return value
    if expected == "bool":
        if not isinstance(value, bool):
            raise ScenarioError(f"{where}: expected true or false")
        return value
    if not isinstance(value, str):
        raise ScenarioError(f"{where}: expected a string")
    return value


def parse_scenario(data: Mapping[str, object]) -> Scenario:
    """Build a scenario from parsed TOML (a mapping).

    Raises:
        ScenarioError: unknown keys, wrong types or broken rules.
    """
    timeline_raw = data.get("timeline", [])
    if not isinstance(timeline_raw, list):
        raise ScenarioError("timeline: expected an array of tables ([[timeline]])")
    timeline: list[Action] = []
    for i, entry in enumerate(timeline_raw):
        where = f"timeline[{i}]"
        groups: tuple[tuple[int, ...], ...] = ()
        if isinstance(entry, Mapping) and "groups" in entry:
            raw_groups = entry["groups"]
            if not isinstance(raw_groups, list):
                raise ScenarioError(f"{where}.groups: expected a list of node lists")
            groups = tuple(_nodes(g, f"{where}.groups") for g in raw_groups)
        timeline.append(_build(Action, entry, where, groups=groups))
    timeline.sort(key=lambda a: a.at)
    network = data.get("network", {})
    boxes: tuple[NatBoxConfig, ...] = ()
    if isinstance(network, Mapping) and "nat_box" in network:
        raw_boxes = network["nat_box"]
        if not isinstance(raw_boxes, list):
            raise ScenarioError("network.nat_box: expected an array of tables")
        boxes = tuple(
            _build(NatBoxConfig, box, f"network.nat_box[{i}]") for i, box in enumerate(raw_boxes)
        )
    tables = ("network", "bootstrap", "timeline", "settings", *WORKLOADS)
    top = {k: v for k, v in data.items() if k not in tables}
    scenario = _build(Scenario, top, "scenario")
    settings = {
        name: _build(workload.config_type, data[name], name)
        for name, workload in WORKLOADS.items()
        if name in data
    }
    if "settings" in data:
        raise ScenarioError("scenario: unknown key 'settings' (workload tables are top-level)")
    return attrs.evolve(
        scenario,
        timeline=tuple(timeline),
        network=_build(NetworkConfig, network, "network", nat_box=boxes),
        bootstrap=_build(BootstrapConfig, data.get("bootstrap", {}), "bootstrap"),
        settings=settings,
    ).validate()


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario TOML file.

    Raises:
        ScenarioError: the file is not valid TOML or not a valid scenario.
        OSError: the file cannot be read.
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    try:
        return parse_scenario(data)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
