"""The default AutoNAT wiring (p2pstack.roots.autonat): its dial-back hosts reach clients over
TCP and QUIC."""

from __future__ import annotations

import anyio
import pytest

from p2pstack.roots.autonat import autonat_services
from p2pstack.roots.defaults import default_services, open_default_host
from protocols.autonat import AutoNATConfig, AutoNATv2, DialStatus, ServerLimits

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("listen", ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"])
async def test_default_dialer_reaches_tcp_and_quic(listen: str) -> None:
    server_config = AutoNATConfig(client=False, limits=ServerLimits(allow_private=True))
    client_config = AutoNATConfig(server=False, allow_private=True)
    server_services = [*default_services(), *autonat_services(server_config)]
    client_services = [*default_services(), *autonat_services(client_config)]
    async with (
        open_default_host(listen=["/ip4/127.0.0.1/tcp/0"], services=server_services) as server,
        open_default_host(listen=[listen], services=client_services) as client,
    ):
        with anyio.fail_after(30):
            await client.connect(server.addrs[0])
            result = await client.service(AutoNATv2).probe(server.peer_id, client.listen_addrs)
    assert (result.addr, result.dial_status, result.verified) == (
        client.listen_addrs[0],
        DialStatus.OK,
        True,
    )
