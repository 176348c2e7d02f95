"""Helpers that run the installed ``p2pstack`` console script as subprocesses, every wait
bounded."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "CLIENT_TIMEOUT",
    "NodeProcess",
    "assert_one_line_error",
    "hanging_up_tcp_server",
    "json_node",
    "run_cli",
    "silent_tcp_server",
]

#: Most seconds any single client command may take before the test fails.
CLIENT_TIMEOUT = 30.0
#: Most seconds a node may take to print its first line, or to exit after a signal.
NODE_TIMEOUT = 15.0


def _script() -> str:
    beside = Path(sys.executable).parent / "p2pstack"
    if beside.exists():
        return str(beside)
    found = shutil.which("p2pstack")
    if found is None:
        raise RuntimeError("the p2pstack console script is not installed (pip install -e .)")
    return found


SCRIPT = _script()


def run_cli(*args: str, timeout: float = CLIENT_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``p2pstack ARGS`` to completion; raises ``subprocess.TimeoutExpired`` after
    ``timeout`` seconds (the child is killed)."""
    return subprocess.run(
        [SCRIPT, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], *fragments: str, status: int = 1
) -> str:
    """Check the failure contract: exit ``status``, exactly one stderr line starting with
    ``p2pstack: error:``, no traceback, nothing on stdout. Returns that line."""
    detail = f"exit {result.returncode}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}"
    assert result.returncode == status, detail
    assert "Traceback" not in result.stderr, detail
    lines = result.stderr.splitlines()
    assert len(lines) == 1, detail
    assert lines[0].startswith("p2pstack: error: "), detail
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


class NodeProcess:
    """A ``p2pstack node`` subprocess (or another long-running command: ``command``) whose
    stdout lines are collected by a reader thread."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        preexec_fn: Callable[[], object] | None = None,
        command: Sequence[str] = ("node",),
    ) -> None:
        self.args = list(args)
        self.proc = subprocess.Popen(
            [SCRIPT, *command, *args],
            preexec_fn=preexec_fn,  # noqa: PLW1509 (sets a limit; no locks)
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.stderr = ""
        self._eof = False
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def wait_line(self, predicate: Callable[[str], bool], timeout: float = NODE_TIMEOUT) -> str:
        """The first stdout line (seen so far or later) that satisfies ``predicate``.

        Raises:
            AssertionError: none within ``timeout`` seconds, or the node exited first.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if predicate(line):
                        return line
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    raise AssertionError(
                        f"no matching line from node {self.args} (exit {self.proc.poll()}, "
                        f"{'ended' if self._eof else 'timed out'}):\n"
                        + "\n".join(self.lines)
                        + f"\nstderr: {self.stderr!r}"
                    )
                self._changed.wait(remaining)

    def events(self) -> list[dict[str, object]]:
        """Every stdout line so far, parsed (each must be a JSON object)."""
        with self._changed:
            lines = list(self.lines)
        parsed = [json.loads(line) for line in lines]
        assert all(isinstance(p, dict) for p in parsed), lines
        return parsed

    def wait_event(
        self, predicate: Callable[[dict[str, object]], bool], timeout: float = NODE_TIMEOUT
    ) -> dict[str, object]:
        """The first JSON event that satisfies ``predicate``; see ``wait_line``."""

        def matches(line: str) -> bool:
            event = json.loads(line)  # a line that is not JSON fails the test
            return isinstance(event, dict) and predicate(event)

        event: dict[str, object] = json.loads(self.wait_line(matches, timeout))
        return event

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = NODE_TIMEOUT) -> int:
        """Send ``sig`` and return the exit status; the node is killed if it outlives
        ``timeout`` (the test then fails with ``subprocess.TimeoutExpired``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            status = self.proc.wait(timeout)
        finally:
            self.kill()
        return status

    def kill(self) -> None:
        """Kill the node if it still runs and collect its output. Never raises."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(NODE_TIMEOUT)
        for reader in self._readers:
            reader.join(NODE_TIMEOUT)


@contextmanager
def json_node(*args: str) -> Iterator[tuple[NodeProcess, dict[str, object]]]:
    """A ``node --json`` subprocess and its first event (read with a deadline); killed on exit."""
    node = NodeProcess(["--json", *args])
    try:
        first = node.wait_event(lambda _: True)
        yield node, first
    finally:
        node.kill()


@contextmanager
def hanging_up_tcp_server() -> Iterator[int]:
    """A TCP listener on 127.0.0.1 that closes each connection as soon as the peer's first bytes
    arrive, as a node at its connection limit does; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)  # wakes up to notice ``stop``
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    conn.recv(1024)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


@contextmanager
def silent_tcp_server() -> Iterator[int]:
    """A TCP listener on 127.0.0.1 that accepts connections and never sends a byte; yields its
    port. The accepted sockets are held open until the block exits."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)  # wakes up to notice ``stop``
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()
        for conn in accepted:
            conn.close()
