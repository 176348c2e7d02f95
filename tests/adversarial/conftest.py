"""Fixtures of the adversarial suite: the node under attack, an honest client, memory tracing,
the flood scale, and the table of observed outcomes.

Flood sizes: ``--flood-scale=ci`` (default; also ``P2PSTACK_FLOOD_SCALE=ci``) fits the CI budget,
``--flood-scale=full`` runs the sizes of the issue (1,500 idle and 1,500 trickling connections):
``pytest tests/adversarial --flood-scale=full``. ``P2PSTACK_ADVERSARIAL_REPORT=path.json``
writes every observed outcome to ``path.json`` (the figures of docs/reliability.md).
``--flood-tracemalloc`` runs the flood tests' node (a process of its own) under tracemalloc: a
diagnostic that checks tracked memory instead of the RSS bound.
"""

from __future__ import annotations

import json
import os
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import attrs
import pytest

from p2pstack.host import Host
from tests.adversarial.node import (
    Baseline,
    assert_back_to_baseline,
    assert_healthy,
    measure,
    open_client,
    open_node,
    port_of,
)

_SCALE_ENV = "P2PSTACK_FLOOD_SCALE"
_REPORT_ENV = "P2PSTACK_ADVERSARIAL_REPORT"


@attrs.frozen
class FloodScale:
    """How big the floods are."""

    name: str
    idle: int  # idle connections
    trickle: int  # connections sending one byte every second
    complete: int  # fully upgraded connections
    sources: int  # attacker source addresses for the spread variants


SCALES = {
    "ci": FloodScale("ci", idle=300, trickle=300, complete=200, sources=50),
    "full": FloodScale("full", idle=1500, trickle=1500, complete=500, sources=250),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--flood-scale",
        choices=sorted(SCALES),
        default=None,
        help=f"size of the adversarial floods (default: ${_SCALE_ENV} or 'ci')",
    )
    parser.addoption(
        "--flood-tracemalloc",
        action="store_true",
        default=False,
        help="run the flood tests' node under tracemalloc (diagnostic: RSS not checked)",
    )


@pytest.fixture(scope="session")
def flood_scale(request: pytest.FixtureRequest) -> FloodScale:
    name = request.config.getoption("flood_scale", default=None) or os.environ.get(_SCALE_ENV, "ci")
    return SCALES[str(name)]


@pytest.fixture
def anyio_backend() -> str:
    """The node runs on asyncio here: the attacks target the node's logic, which both backends
    share (each transport and muxer test runs on both); one backend keeps the suite in budget."""
    return "asyncio"


@attrs.define
class Report:
    """Observed outcomes, one row per attack."""

    rows: list[dict[str, object]] = attrs.field(factory=list)

    def add(self, attack: str, **fields: object) -> None:
        self.rows.append({"attack": attack, **fields})


@pytest.fixture(scope="session")
def report() -> Iterator[Report]:
    collected = Report()
    yield collected
    path = os.environ.get(_REPORT_ENV)
    if path:
        with open(path, "w") as out:
            json.dump(collected.rows, out, indent=1, default=str)


@pytest.fixture
def traced() -> Iterator[None]:
    """Trace Python allocations for the test (the node's memory must return to baseline)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        yield
    finally:
        if started:
            tracemalloc.stop()


@pytest.fixture
async def node(traced: None) -> AsyncIterator[Host]:
    async with open_node() as host:
        yield host


@pytest.fixture
async def client() -> AsyncIterator[Host]:
    async with open_client() as host:
        yield host


@pytest.fixture
async def baseline(node: Host, client: Host) -> Baseline:
    """Descriptors and memory once the node has served the honest client once."""
    await assert_healthy(node, client)
    return measure()


@attrs.frozen
class Arena:
    """A node under attack, its honest client, its baseline and the report."""

    node: Host
    client: Host
    baseline: Baseline
    report: Report

    @property
    def port(self) -> int:
        return port_of(self.node.addrs[0])

    async def check(self) -> Baseline:
        """The node serves the honest client and is back to baseline (see ``node.py``).

        Returns:
            The measurement after the attack.
        """
        await assert_healthy(self.node, self.client)
        return await assert_back_to_baseline(self.baseline)


@pytest.fixture
def arena(node: Host, client: Host, baseline: Baseline, report: Report) -> Arena:
    return Arena(node, client, baseline, report)
