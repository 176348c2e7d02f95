"""examples/chat.py: how messages are shown (nicknames, plain-text publishers, no terminal
control characters from peers), and two chat processes talking through one's address."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType

import pytest

from p2pstack.identity import Identity
from protocols.pubsub import Message, PubsubMessage

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "chat.py"
TIMEOUT = 30.0


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chat_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


chat = _load()


def _message(data: bytes) -> PubsubMessage:
    sender = Identity.generate().peer_id
    raw = Message(topic="room", data=data, from_=sender, seqno=bytes(8))
    return PubsubMessage("room", data, sender, 0, b"id", sender, raw)


def test_chat_messages_show_the_nickname() -> None:
    assert chat.render(_message(chat.encode("bob", "hi there"))) == "<bob> hi there"
    assert json.loads(chat.encode("ünï", "x")) == {"nick": "ünï", "text": "x"}


def test_other_messages_show_the_sender() -> None:
    message = _message(b"plain text")
    sender = str(message.from_peer)
    assert chat.render(message) == f"<{sender[:8]}…{sender[-6:]}> plain text"
    assert chat.render(_message(b'{"nick": "x"}')).endswith('> {"nick": "x"}')


def test_peers_cannot_drive_the_terminal() -> None:
    shown = chat.render(_message(chat.encode("\x1b[2Jevil", "a\x07b\x1b]0;title\x07")))
    assert "\x1b" not in shown and "\x07" not in shown
    assert shown == "<?[2Jevil> a?b?]0;title?"
    assert len(chat.render(_message(chat.encode("n" * 100, "t")))) == len("<> t") + chat.MAX_NICK


class _Chat:
    """A chat process; its stdout lines are collected by a thread."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_line(self, fragment: str) -> str:
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(fragment in line for line in self.lines), TIMEOUT
            )
            assert found, f"{fragment!r} not in {self.lines}"
            return next(line for line in self.lines if fragment in line)

    def say(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)


@pytest.mark.parametrize("router", ["gossipsub", "floodsub"])
def test_two_chats_talk(router: str) -> None:
    alice = _Chat("--nick", "alice", "--topic", "room", "--router", router)
    bob: _Chat | None = None
    try:
        address = alice.wait_line("others join with --bootstrap ").rsplit(" ", 1)[1]
        bob = _Chat("--nick", "bob", "--topic", "room", "--router", router, "--bootstrap", address)
        assert "(1 peer in the room)" in bob.wait_line("chat: joined room")
        bob_id = bob.wait_line("chat: you are bob (").rsplit("(", 1)[1].rstrip(")")
        alice.wait_line(f"* {bob_id} joined")
        bob.say("hello alice\n")
        alice.wait_line("<bob> hello alice")
        alice.say("hi bob\n/quit\n")
        bob.wait_line("<alice> hi bob")
        assert alice.proc.wait(TIMEOUT) == 0
        bob.say("/quit\n")
        assert bob.proc.wait(TIMEOUT) == 0
        assert not [line for line in bob.lines if "hello alice" in line]  # own lines not echoed
    finally:
        alice.kill()
        if bob is not None:
            bob.kill()
