"""A third-party protocol service written only against p2pstack's public names.

``Greeter`` speaks ``/example/greeter/1.0.0``: one length-prefixed UTF-8 line per stream. When a
peer that supports the protocol connects (learned through identify, via a topology), the
service greets it; when the host closes, ``stop()`` says goodbye to every such peer while the
connections are still open. Every greeting received is published on the host's event bus as
the service's own typed event, ``Greeted``. docs/architecture.md walks through it, and
tests/test_example_service.py runs it.

Run it: ``.venv/bin/python examples/greeter.py``.
"""

from __future__ import annotations

import anyio
import attrs

from p2pstack import Host, Stream, open_host
from p2pstack.errors import NETWORK_ERRORS
from p2pstack.framing import read_lp, write_lp
from p2pstack.identity import PeerId
from p2pstack.topology import Topology

__all__ = ["PROTOCOL_ID", "Greeted", "Greeter"]

PROTOCOL_ID = "/example/greeter/1.0.0"
#: Longest greeting accepted, in bytes: every buffer a peer can fill has a bound.
MAX_GREETING = 256


@attrs.frozen(kw_only=True)
class Greeted:
    """A peer greeted us (published on ``host.events``)."""

    peer_id: PeerId
    text: str


class Greeter:
    """Greets every peer that speaks the greeter protocol, and says goodbye on close.

    Args:
        name: how we introduce ourselves.
        timeout: most seconds for one greeting, sent or received.
    """

    def __init__(self, name: str, *, timeout: float = 5.0) -> None:
        self.name = name
        self._timeout = timeout
        self._host: Host | None = None
        self._topology: Topology | None = None

    async def start(self, host: Host) -> None:
        """Serve the protocol and follow the peers that speak it (no network work here)."""
        self._host = host
        host.set_stream_handler(PROTOCOL_ID, self._handle, max_inbound_per_peer=2)
        self._topology = host.register_topology(PROTOCOL_ID, on_connect=self._peer_joined)

    async def stop(self) -> None:
        """Say goodbye to every greeter peer; the host bounds this and then closes connections."""
        if self._topology is None:
            return
        peers = self._topology.peers
        self._topology.close()
        async with anyio.create_task_group() as tg:
            for peer in peers:
                tg.start_soon(self._send, peer, f"goodbye from {self.name}")

    def _peer_joined(self, peer: PeerId) -> None:
        # Topology callbacks run synchronously inside the event bus: start a task for I/O.
        assert self._host is not None
        self._host.start_soon(self._send, peer, f"hello from {self.name}")

    async def _send(self, peer: PeerId, text: str) -> None:
        assert self._host is not None
        try:
            with anyio.fail_after(self._timeout):
                stream = await self._host.new_stream(peer, PROTOCOL_ID)
                async with stream:
                    await write_lp(stream, text.encode())
                    await stream.send_eof()
        except NETWORK_ERRORS:  # TimeoutError is an OSError
            pass  # a peer that went away misses its greeting; nothing else to do

    async def _handle(self, stream: Stream) -> None:
        assert self._host is not None
        with anyio.fail_after(self._timeout):
            data = await read_lp(stream, max_size=MAX_GREETING)
        text = data.decode("utf-8", errors="replace")
        self._host.events.emit(Greeted(peer_id=stream.remote_peer, text=text))


async def main() -> None:
    """Two hosts over TCP greet each other, then one leaves."""
    from protocols.identify import Identify
    from transports.noise import Noise
    from transports.tcp import TcpTransport
    from transports.yamux import Yamux

    async with open_host(
        transports=[TcpTransport()],
        security=[Noise()],
        muxers=[Yamux()],
        services=[Identify(), Greeter("bob")],
        listen=["/ip4/127.0.0.1/tcp/0"],
    ) as bob:
        with bob.events.subscribe(Greeted) as greetings:
            async with open_host(
                transports=[TcpTransport()],
                security=[Noise()],
                muxers=[Yamux()],
                services=[Identify(), Greeter("alice")],
            ) as alice:
                await alice.connect(bob.addrs[0])
                with anyio.fail_after(10):
                    print("bob heard:", (await greetings.receive()).text)
            with anyio.fail_after(10):
                print("bob heard:", (await greetings.receive()).text)


if __name__ == "__main__":
    anyio.run(main)
