"""The js and py interop peers in ``--pubsub`` mode against each other (js<->js, py<->py, js<->py,
py<->js; gossipsub and floodsub): each publishes to the other and every message arrives exactly
once, with the publisher as ``from`` and the publisher's seqno. This keeps the peers known-good
before p2pstack is tested against them. Each peer against itself runs in the long lane
(``pytest --long``).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from tests.interop.peers import PEERS, Event
from tests.interop.pubsub_nodes import RemoteNode, open_remote, until

pytestmark = pytest.mark.anyio

SETTLE = 1.5  # seconds of quiet after the last expected message: no duplicate may follow
TOPIC = "interop-topic"
COUNT = 3


@pytest.fixture
def anyio_backend() -> str:
    """The peers are subprocesses: one backend is enough."""
    return "asyncio"


def check_received(got: list[Event], sender: RemoteNode, sent: list[Event]) -> None:
    """Exactly the sent messages, once each, from ``sender``, with its seqnos."""
    want = {f"from-{sender.proc.kind}-{i}" for i in range(COUNT)}
    assert sorted(m["data"] for m in got) == sorted(want)
    assert all(m["from"] == sender.peer_id and m["topic"] == TOPIC for m in got)
    # msg ids are computed differently by js (key ++ seqno) and py (peer id ++ seqno): both end
    # with the 8-byte seqno, which is the publisher's.
    sent_seqnos = sorted(str(s["msg_id"])[-16:] for s in sent)
    assert sorted(str(m["seqno"]) for m in got) == sent_seqnos
    assert all(str(m["msg_id"]).endswith(str(m["seqno"])) for m in got)


#: js<->py both ways in CI; js<->js and py<->py (each peer against itself) in the long lane.
PAIRS = [
    pytest.param(first, second, marks=[pytest.mark.long] if first == second else [])
    for first in PEERS
    for second in PEERS
]


@pytest.mark.parametrize("router", ["gossipsub", "floodsub"])
@pytest.mark.parametrize(("first", "second"), PAIRS)
async def test_publish_both_ways(first: str, second: str, router: str, tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(open_remote(first, router, log_dir=tmp_path))
        b = await stack.enter_async_context(open_remote(second, router, [a.addr], log_dir=tmp_path))
        await a.command(f"subscribe {TOPIC}")
        await b.command(f"subscribe {TOPIC}")
        await until(a, "peers", TOPIC, b.peer_id)
        await until(b, "peers", TOPIC, a.peer_id)
        if router == "gossipsub":
            # gossipsub publishes to its mesh: wait for the GRAFT (or the next heartbeat).
            await until(a, "mesh", TOPIC, b.peer_id)
            await until(b, "mesh", TOPIC, a.peer_id)
        sent_a = [await a.command(f"publish {TOPIC} from-{first}-{i}") for i in range(COUNT)]
        sent_b = [await b.command(f"publish {TOPIC} from-{second}-{i}") for i in range(COUNT)]
        assert all(s["msg_id"] for s in sent_a + sent_b)
        await check_delivery(router, b, a, sent_a)
        await check_delivery(router, a, b, sent_b)


async def check_delivery(
    router: str, receiver: RemoteNode, sender: RemoteNode, sent: list[Event]
) -> None:
    if router == "floodsub" and (sender.proc.kind, receiver.proc.kind) == ("py", "js"):
        # js floodsub re-encodes the seqno from a bigint (leading zero bytes dropped) to check the
        # signature; py's seqnos are a counter with leading zero bytes: every one is rejected.
        assert await receiver.receive(0, settle=SETTLE) == []
        return
    check_received(await receiver.receive(COUNT, settle=SETTLE), sender, sent)
