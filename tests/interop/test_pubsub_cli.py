"""The ``p2pstack`` pubsub command line and ``examples/chat.py`` against a js-libp2p node
(@libp2p/gossipsub 17.1.1 and @libp2p/floodsub 11.0.28): ``pubsub sub`` through js gets a
message js publishes right after ``subscribed``; ``pubsub pub`` through js reaches js and a
``pubsub sub`` (with the original publisher as ``from``); a ``p2pstack node --subscribe``
between js and a ``pubsub sub`` prints and forwards js's messages; the chat example and js talk
both ways. The CLI runs in its own processes: one anyio backend is enough.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from p2pstack.identity import Identity
from tests.interop.peers import REPO, Event
from tests.interop.pubsub_nodes import RemoteNode, open_remote, until

pytestmark = pytest.mark.anyio

CLI = [sys.executable, "-m", "p2pstack.roots.cli"]
CHAT = [sys.executable, str(REPO / "examples" / "chat.py")]
START_TIMEOUT = 30.0  # the CLI node printing its first line
OP_TIMEOUT = 20.0
#: Bound on a whole CLI run (interpreter start, connect, one operation, exit).
CLI_TIMEOUT = 60.0
#: Seconds of quiet after the expected messages: no duplicate may follow.
SETTLE = 1.0

_RUNS = itertools.count()


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def _env() -> dict[str, str]:
    # The code under test is this checkout's, whatever is installed in the venv.
    return {**os.environ, "PYTHONPATH": str(REPO)}


class Lines:
    """A subprocess whose stdout is read line by line, each wait bounded."""

    def __init__(self, name: str, process: Process, stderr_path: Path) -> None:
        self.name = name
        self.process = process
        self.stderr_path = stderr_path
        assert process.stdout is not None
        self._stdout = BufferedByteReceiveStream(process.stdout)
        self.lines: list[str] = []

    async def line(self, timeout: float = OP_TIMEOUT) -> str:
        try:
            with anyio.fail_after(timeout):
                raw = await self._stdout.receive_until(b"\n", 1 << 20)
        except (anyio.IncompleteRead, anyio.EndOfStream, TimeoutError):
            stderr = self.stderr_path.read_text(errors="replace")[-3000:]
            raise AssertionError(
                f"{self.name}: no line (so far {self.lines[-5:]}); stderr:\n{stderr}"
            ) from None
        self.lines.append(raw.decode())
        return self.lines[-1]

    async def event(self, name: str, timeout: float = OP_TIMEOUT) -> Event:
        """Skip JSON events until one named ``name``."""
        with anyio.fail_after(timeout):
            while True:
                event: Event = json.loads(await self.line(timeout))
                if event.get("event") == name:
                    return event

    async def events(self, *names: str, timeout: float = OP_TIMEOUT) -> dict[str, Event]:
        """The first JSON event of each of ``names``, in whatever order they come."""
        found: dict[str, Event] = {}
        with anyio.fail_after(timeout):
            while set(found) != set(names):
                event: Event = json.loads(await self.line(timeout))
                if event.get("event") in names:
                    found.setdefault(event["event"], event)
        return found

    async def line_matching(self, fragment: str, timeout: float = OP_TIMEOUT) -> str:
        with anyio.fail_after(timeout):
            while fragment not in (line := await self.line(timeout)):
                pass
        return line

    async def send(self, text: str) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(text.encode())

    async def exit_status(self, timeout: float = OP_TIMEOUT) -> int:
        with anyio.fail_after(timeout):
            return await self.process.wait()


@asynccontextmanager
async def run(name: str, argv: Sequence[str], log_dir: Path) -> AsyncIterator[Lines]:
    """Run ``argv`` (terminated, then killed, when the block ends)."""
    stderr_path = log_dir / f"{name}-{next(_RUNS)}.stderr"
    with stderr_path.open("wb") as stderr:
        process = await anyio.open_process(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=_env(),
            cwd=str(REPO),
        )
        try:
            yield Lines(name, process, stderr_path)
        finally:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    process.terminate()
                    with anyio.move_on_after(5):
                        await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
                await process.aclose()


@asynccontextmanager
async def js_node(router: str, topic: str, log_dir: Path) -> AsyncIterator[RemoteNode]:
    """A js node running ``router``, subscribed to ``topic``."""
    async with open_remote("js", router, log_dir=log_dir, timeout=OP_TIMEOUT) as node:
        await node.command(f"subscribe {topic}")
        yield node


def key_file(directory: Path) -> tuple[str, str]:
    """A fresh key file and its peer ID."""
    identity = Identity.generate()
    path = directory / f"{identity.peer_id}.key"
    identity.save(path)
    return str(path), str(identity.peer_id)


@pytest.mark.parametrize("router", ["gossipsub", "floodsub"])
async def test_sub_gets_what_js_publishes_right_after_subscribed(
    router: str, tmp_path: Path
) -> None:
    topic = f"cli-sub-{router}"
    key, sub_id = key_file(tmp_path)
    async with js_node(router, topic, tmp_path) as js:
        argv = [*CLI, "pubsub", "sub", topic, "--bootstrap", js.addr, "--router", router]
        argv += ["--key", key, "--count", "2", "--json", "--timeout", str(OP_TIMEOUT)]
        async with run("sub", argv, tmp_path) as sub:
            assert await sub.event("subscribed", CLI_TIMEOUT) == {
                "event": "subscribed",
                "topic": topic,
                "peers": 1,
            }
            # No waiting for the mesh: the GRAFT (gossipsub) or SUBSCRIBE (floodsub) is there.
            sent = [await js.command(f"publish {topic} js says {i}") for i in range(2)]
            assert all(sub_id in s["recipients"] for s in sent), sent
            got = [await sub.event("message") for _ in range(2)]
            assert await sub.exit_status() == 0
    assert [m["data"] for m in got] == ["js says 0", "js says 1"]
    assert all(m["from"] == js.peer_id and m["topic"] == topic for m in got)
    # js message IDs are key ++ seqno: their last 8 bytes are the seqno we print.
    assert [m["seqno"] for m in got] == [str(s["msg_id"])[-16:] for s in sent]
    assert [m["data_b64"] for m in got] == ["anMgc2F5cyAw", "anMgc2F5cyAx"]


@pytest.mark.parametrize("router", ["gossipsub", "floodsub"])
async def test_pub_reaches_js_and_a_sub_through_it(router: str, tmp_path: Path) -> None:
    topic = f"cli-pub-{router}"
    key, pub_id = key_file(tmp_path)
    common = ["--bootstrap", "", "--router", router, "--json", "--timeout", str(OP_TIMEOUT)]
    async with js_node(router, topic, tmp_path) as js:
        common[1] = js.addr
        sub_argv = [*CLI, "pubsub", "sub", topic, "--count", "1", *common]
        async with run("sub", sub_argv, tmp_path) as sub:
            await sub.event("subscribed", CLI_TIMEOUT)
            pub_argv = [*CLI, "pubsub", "pub", topic, "héllo from the CLI", "--key", key]
            with anyio.fail_after(CLI_TIMEOUT):
                done = await anyio.run_process([*pub_argv, *common], check=False, env=_env())
            assert (done.returncode, done.stderr) == (0, b""), done
            (published,) = [json.loads(line) for line in done.stdout.decode().splitlines()]
            forwarded = await sub.event("message")
            assert await sub.exit_status() == 0
        (received,) = await js.receive(1, settle=SETTLE)
    assert set(published) == {"event", "topic", "msg_id", "peers"}
    assert (published["event"], published["topic"], published["peers"]) == ("published", topic, 1)
    # Our message ID is go's default, from ++ seqno; js's is key ++ seqno: same seqno.
    assert published["msg_id"].endswith(received["seqno"])
    assert (received["from"], received["data"]) == (pub_id, "héllo from the CLI")
    # The sub got it from js, but ``from`` is the original publisher.
    assert (forwarded["from"], forwarded["data"]) == (pub_id, "héllo from the CLI")
    assert forwarded["msg_id"] == published["msg_id"]


@pytest.mark.parametrize("router", ["gossipsub", "floodsub"])
async def test_node_between_js_and_a_sub(router: str, tmp_path: Path) -> None:
    topic = f"cli-node-{router}"
    async with js_node(router, topic, tmp_path) as js:
        node_argv = [*CLI, "node", "--json", "--pubsub", router, "--subscribe", topic]
        async with run("node", [*node_argv, "--bootstrap", js.addr], tmp_path) as node:
            listening = await node.event("listening", START_TIMEOUT)
            assert (listening["pubsub"], listening["topics"]) == (router, [topic])
            # js's subscription came on its stream to the node: js can send to it now.
            joined = await node.events("pubsub_bootstrapped", "topic_peer_joined")
            assert joined["pubsub_bootstrapped"]["peers"] == 1
            assert joined["topic_peer_joined"] == {
                "event": "topic_peer_joined",
                "peer_id": js.peer_id,
                "topic": topic,
            }
            node_id, node_addr = listening["peer_id"], listening["addrs"][0]
            await until(js, "peers", topic, node_id)
            if router == "gossipsub":  # js publishes to its mesh only
                await until(js, "mesh", topic, node_id)
            sub_argv = [*CLI, "pubsub", "sub", topic, "--bootstrap", node_addr, "--router"]
            sub_argv += [router, "--count", "1", "--json", "--timeout", str(OP_TIMEOUT)]
            async with run("sub", sub_argv, tmp_path) as sub:
                await sub.event("subscribed", CLI_TIMEOUT)
                sent = await js.command(f"publish {topic} through the node")
                assert node_id in sent["recipients"], sent
                printed = await node.event("message")
                forwarded = await sub.event("message")
                assert await sub.exit_status() == 0
    for message in (printed, forwarded):
        assert (message["from"], message["data"]) == (js.peer_id, "through the node")
        assert message["seqno"] == str(sent["msg_id"])[-16:]


async def test_chat_talks_with_js(tmp_path: Path) -> None:
    topic = "cli-chat"
    async with js_node("gossipsub", topic, tmp_path) as js:
        argv = [*CHAT, "--nick", "alice", "--topic", topic, "--bootstrap", js.addr]
        async with run("chat", argv, tmp_path) as chat:
            you = await chat.line_matching("chat: you are alice (", START_TIMEOUT)
            chat_id = you.strip().rsplit("(", 1)[1].rstrip(")")
            assert "1 peer in the room" in await chat.line_matching("chat: joined", CLI_TIMEOUT)
            sent = await js.command(f"publish {topic} hello from js")
            assert chat_id in sent["recipients"], sent
            shown = await chat.line_matching("hello from js")
            assert shown.strip() == f"<{js.peer_id[:8]}…{js.peer_id[-6:]}> hello from js"
            await chat.send("hi, js\n/quit\n")
            assert await chat.exit_status() == 0
        (received,) = await js.receive(1, settle=SETTLE)
    assert received["from"] == chat_id
    assert json.loads(received["data"]) == {"nick": "alice", "text": "hi, js"}
