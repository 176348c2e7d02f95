"""Demo: two p2pstack nodes on this machine connect over TCP + Noise + yamux, ping and identify.

Run with ``make demo`` (or ``.venv/bin/python examples/demo.py``).
"""

from __future__ import annotations

import anyio

from p2pstack.roots.defaults import open_default_host
from protocols.identify import Identify
from protocols.ping import Ping


async def main() -> None:
    async with (
        open_default_host(listen=["/ip4/127.0.0.1/tcp/0"]) as alice,
        open_default_host(listen=["/ip4/127.0.0.1/tcp/0"]) as bob,
    ):
        print(f"alice  {alice.peer_id}  listening on {alice.addrs[0]}")
        print(f"bob    {bob.peer_id}  listening on {bob.addrs[0]}")
        with anyio.fail_after(30):
            conn = await alice.connect(bob.addrs[0])
            print(
                f"\nalice connected to bob over {conn.security_protocol} + {conn.muxer_protocol}"
                f" ({conn.local_multiaddr} -> {conn.remote_multiaddr})"
            )
            rtts = await alice.service(Ping).ping(bob.peer_id, count=5)
            print("ping   " + "  ".join(f"{rtt * 1000:.2f} ms" for rtt in rtts))
            info = await alice.service(Identify).identify(bob.peer_id)
        print("\nidentify says bob is:")
        print(f"  agent            {info.agent_version}")
        print(f"  protocol version {info.protocol_version}")
        print(f"  protocols        {', '.join(info.protocols)}")
        print(f"  listen addrs     {', '.join(map(str, info.listen_addrs))}")
        print(f"  observed alice   {info.observed_addr}")


if __name__ == "__main__":
    anyio.run(main)
