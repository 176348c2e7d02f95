from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack._ifaddrs import _ipv6_from_proc, expand_unspecified, interface_addresses
from p2pstack.builder import open_host
from transports.noise import Noise
from transports.tcp import TcpTransport
from transports.yamux import Yamux

IFACES = (["127.0.0.1", "192.0.2.7"], ["::1", "2001:db8::5"])


def test_unspecified_addresses_expand_per_family() -> None:
    addrs = [
        Multiaddr("/ip4/0.0.0.0/tcp/4001"),
        Multiaddr("/ip6/::/udp/4001/quic-v1"),
        Multiaddr("/ip4/10.1.2.3/tcp/9"),
        Multiaddr("/memory/3"),
    ]
    assert [str(a) for a in expand_unspecified(addrs, IFACES)] == [
        "/ip4/127.0.0.1/tcp/4001",
        "/ip4/192.0.2.7/tcp/4001",
        "/ip6/::1/udp/4001/quic-v1",
        "/ip6/2001:db8::5/udp/4001/quic-v1",
        "/ip4/10.1.2.3/tcp/9",
        "/memory/3",
    ]


def test_interface_addresses_keep_loopback_first_and_drop_link_local() -> None:
    v4, v6 = interface_addresses([lambda: ["192.0.2.7", "fe80::1", "2001:db8::5", "192.0.2.7"]])
    assert v4 == ["127.0.0.1", "192.0.2.7"]
    assert v6 == ["::1", "2001:db8::5"]


def test_proc_if_inet6_is_parsed(tmp_path: Path) -> None:
    table = tmp_path / "if_inet6"
    table.write_text(
        "20010db8000000000000000000000005 04 40 00 80     eth0\n"
        "00000000000000000000000000000001 01 80 10 80       lo\n"
    )
    assert _ipv6_from_proc(table) == ["2001:db8::5", "::1"]
    assert _ipv6_from_proc(tmp_path / "missing") == []


def test_this_machine_has_at_least_loopback() -> None:
    v4, v6 = interface_addresses()
    assert v4[0] == "127.0.0.1" and v6[0] == "::1"


@pytest.mark.anyio
async def test_a_host_listening_everywhere_advertises_dialable_addresses() -> None:
    async with (
        open_host(
            transports=[TcpTransport()],
            security=[Noise()],
            muxers=[Yamux()],
            listen=["/ip4/0.0.0.0/tcp/0"],
        ) as b,
        open_host(transports=[TcpTransport()], security=[Noise()], muxers=[Yamux()]) as a,
    ):
        assert str(b.bound_addrs[0]).startswith("/ip4/0.0.0.0/tcp/")
        assert b.listen_addrs and all("0.0.0.0" not in str(x) for x in b.listen_addrs)
        assert str(b.addrs[0]).startswith("/ip4/127.0.0.1/tcp/")
        with anyio.fail_after(10):
            conn = await a.connect(b.addrs[0])
        assert conn.remote_peer == b.peer_id
