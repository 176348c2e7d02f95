"""Deterministic simulation core: a virtual-time event loop, seeded randomness and a hashed
event trace (docs/simulation.md). Imports neither ``transports`` nor ``protocols``."""

from p2pstack.sim._loop import SimulationDeadlock, VirtualClock, VirtualEventLoop, run_virtual
from p2pstack.sim._random import SeededRandom, derive_seed
from p2pstack.sim._trace import TraceRecorder, TraceValue

__all__ = [
    "SeededRandom",
    "SimulationDeadlock",
    "TraceRecorder",
    "TraceValue",
    "VirtualClock",
    "VirtualEventLoop",
    "derive_seed",
    "run_virtual",
]
