"""js-libp2p and py-libp2p nodes as bootstrap peers: our discovery service finds them through the
bootstrap list (a /p2p/ address, and a /dnsaddr/ name served by a DNS server on 127.0.0.1),
dials them and identifies them."""

from __future__ import annotations

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.builder import open_host
from p2pstack.events import PeerProtocolsChanged
from p2pstack.identity import PeerId
from p2pstack.multiaddrs import split_peer_id, with_peer_id
from protocols.discovery import Bootstrap, BootstrapConfig, Discovery
from protocols.identify import Identify
from protocols.ping import Ping
from tests.interop.conftest import Peer
from tests.interop.peers import PEERS
from tests.protocols.discovery.dns_server import dns_server
from transports.noise import Noise
from transports.tcp import TcpTransport
from transports.yamux import Yamux

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    # The discovery driver runs on both backends in tests/protocols/discovery; one is enough
    # against the remote peers.
    return "asyncio"


@pytest.mark.parametrize("entry", ["p2p", "dnsaddr"])
@pytest.mark.parametrize("kind", PEERS)
async def test_a_remote_bootstrap_peer_is_found_dialed_and_identified(
    kind: str, entry: str, peer: Peer
) -> None:
    args = ["--listen", "/ip4/127.0.0.1/tcp/0", "--muxer", "yamux"]
    async with peer(kind, args) as remote:
        listening = await remote.wait_for("listening", 60)
        remote_id = PeerId.from_string(str(listening["peer_id"]))
        text = next(a for a in listening["addrs"] if "/ip4/127.0.0.1/" in a)
        transport, _ = split_peer_id(Multiaddr(text))
        assert transport is not None
        full = with_peer_id(transport, remote_id)
        zone = {"_dnsaddr.boot.test": [f"dnsaddr={full}"]}
        async with dns_server(zone) as (nameserver, _):
            boot_entry = f"/dnsaddr/boot.test/p2p/{remote_id}" if entry == "dnsaddr" else full
            bootstrap = Bootstrap(BootstrapConfig(peers=[boot_entry], nameserver=nameserver))
            async with open_host(
                transports=[TcpTransport()],
                security=[Noise()],
                muxers=[Yamux()],
                services=[Identify(), Ping(), Discovery([bootstrap])],
                listen=["/ip4/127.0.0.1/tcp/0"],
            ) as host:
                with host.events.subscribe(PeerProtocolsChanged) as identified:
                    with anyio.fail_after(60):
                        while "/ipfs/id/1.0.0" not in host.peerstore.protocols(remote_id):
                            await identified.receive()
                (found,) = host.service(Discovery).announced()
                assert (found.peer_id, found.source, found.addrs) == (
                    remote_id,
                    "bootstrap",
                    (transport,),
                )
                assert host.connections(remote_id)
                inbound = await remote.wait_for("inbound", 30)
                assert inbound["peer_id"] == str(host.peer_id)
                assert bootstrap.errors == {}
