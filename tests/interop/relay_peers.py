"""Run the relay client peers (tests/interop/js/relay_client_peer.mjs, py/relay_client_peer.py)
against a p2pstack relay: the relay host and the subprocess runner."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from p2pstack.builder import open_host
from p2pstack.host import Host, HostConfig
from protocols.identify import Identify
from protocols.ping import Ping
from protocols.relay import RelayConfig, RelayService
from tests.interop.peers import HERE, JS_NODE, PY_PYTHON, PeerProcess, spawn
from transports.mplex import Mplex
from transports.noise import Noise
from transports.tcp import TcpTransport
from transports.yamux import Yamux

__all__ = ["relay_host", "run_relay_client"]


SCRIPTS = {
    "js": (JS_NODE, HERE / "js" / "relay_client_peer.mjs"),
    "py": (PY_PYTHON, HERE / "py" / "relay_client_peer.py"),
}


@asynccontextmanager
async def relay_host(config: RelayConfig | None = None) -> AsyncIterator[Host]:
    """A p2pstack relay on 127.0.0.1 (TCP, Noise, yamux and mplex, identify, ping)."""
    async with open_host(
        transports=[TcpTransport()],
        security=[Noise()],
        muxers=[Yamux(), Mplex()],
        services=[Identify(), Ping(), RelayService(config)],
        listen=["/ip4/127.0.0.1/tcp/0"],
        config=HostConfig(upgrade_timeout=30.0),
    ) as host:
        yield host


@asynccontextmanager
async def run_relay_client(
    kind: str, args: Sequence[str], *, log_dir: Path
) -> AsyncIterator[PeerProcess]:
    """Start the ``kind`` relay client peer with ``args``; terminated when the block ends."""
    async with spawn(
        kind, SCRIPTS[kind] + tuple(args), log_dir=log_dir, label="relay-client"
    ) as peer:
        yield peer
