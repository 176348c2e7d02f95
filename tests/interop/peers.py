"""Drive the real interop peers (js-libp2p 3.x under Node 22, py-libp2p 0.8.1 in its own venv) as
subprocesses speaking the JSON-lines contract of tests/interop/README.md."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
JS_NODE = HERE / "js" / "node_modules" / ".bin" / "node"
JS_PEER = HERE / "js" / "peer.mjs"
PY_PYTHON = REPO / ".interop" / "py-venv" / "bin" / "python"
PY_PEER = HERE / "py" / "peer.py"

ECHO = "/p2pstack/echo/1.0.0"
PEERS = ("js", "py")
#: js-libp2p's own default for @libp2p/mplex `disconnectThreshold`: the interop js peer is run
#: with it so that our mplex is tested against what real js nodes enforce.
JS_MPLEX_DEFAULT_THRESHOLD = "5"

#: One JSON object a peer printed (values are whatever JSON holds).
Event = dict[str, Any]


def command(kind: str) -> list[str]:
    """The argv prefix that runs peer ``kind``; fails loudly if its setup has not run."""
    if kind == "js":
        exe, script = JS_NODE, JS_PEER
    elif kind == "py":
        exe, script = PY_PYTHON, PY_PEER
    else:
        raise ValueError(kind)
    if not exe.exists():
        raise AssertionError(
            f"interop peer {kind!r} is not installed ({exe} missing): run `make interop-setup`"
        )
    return [str(exe), str(script)]


class PeerProcess:
    """A running peer: read its JSON events in order, each wait bounded."""

    def __init__(self, kind: str, process: Process, stderr_path: Path) -> None:
        self.kind = kind
        self.process = process
        self.stderr_path = stderr_path
        assert process.stdout is not None
        self._lines = BufferedByteReceiveStream(process.stdout)
        self.events: list[Event] = []

    def _stderr_tail(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    async def next_event(self, timeout: float) -> Event:
        try:
            with anyio.fail_after(timeout):
                line = await self._lines.receive_until(b"\n", 1 << 20)
        except (anyio.IncompleteRead, anyio.EndOfStream):
            raise AssertionError(
                f"{self.kind} peer exited (events so far: {self.events[-5:]}); "
                f"stderr:\n{self._stderr_tail()}"
            ) from None
        except TimeoutError:
            raise AssertionError(
                f"{self.kind} peer said nothing for {timeout} s (events so far: "
                f"{self.events[-5:]}); stderr:\n{self._stderr_tail()}"
            ) from None
        event: Event = json.loads(line)
        self.events.append(event)
        if event.get("event") == "error":
            raise AssertionError(f"{self.kind} peer failed: {event.get('message')}")
        return event

    async def wait_for(self, name: str, timeout: float) -> Event:
        """Skip events until one named ``name``."""
        with anyio.fail_after(timeout):
            while True:
                event = await self.next_event(timeout)
                if event.get("event") == name:
                    return event

    async def collect_until_done(self, timeout: float) -> dict[str, list[Event]]:
        """Every event up to ``done``, grouped by name."""
        grouped: dict[str, list[Event]] = {}
        with anyio.fail_after(timeout):
            while True:
                event = await self.next_event(timeout)
                name = str(event.get("event"))
                if name == "done":
                    return grouped
                grouped.setdefault(name, []).append(event)


def _open_log(log_dir: Path, name: str) -> tuple[Path, IO[bytes]]:
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{name}-{len(list(log_dir.iterdir()))}.stderr"
    return path, path.open("wb")


@asynccontextmanager
async def spawn(
    kind: str, argv: Sequence[str | Path], *, log_dir: Path, label: str = "peer"
) -> AsyncIterator[PeerProcess]:
    """Start ``argv`` (a peer script and its arguments) with stdin and stdout piped and stderr in
    a log file under ``log_dir``; it is terminated (then killed) when the block ends.

    Raises:
        AssertionError: the script's interpreter is not installed (``make interop-setup``).
    """
    exe = Path(argv[0])
    if exe.is_absolute() and not await anyio.Path(exe).exists():
        raise AssertionError(f"{kind} interop peer is not installed ({exe}): make interop-setup")
    stderr_path, stderr = _open_log(log_dir, f"{kind}-{label}")
    process = await anyio.open_process(
        [str(a) for a in argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        cwd=str(REPO),
    )
    try:
        yield PeerProcess(kind, process, stderr_path)
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
            stderr.close()


@asynccontextmanager
async def run_peer(kind: str, args: Sequence[str], *, log_dir: Path) -> AsyncIterator[PeerProcess]:
    """Start a peer with ``args``; it is terminated (then killed) when the block ends."""
    argv = command(kind) + list(args)
    if kind == "js" and "--mplex-disconnect-threshold" not in args:
        argv += ["--mplex-disconnect-threshold", JS_MPLEX_DEFAULT_THRESHOLD]
    async with spawn(kind, argv, log_dir=log_dir) as peer:
        yield peer
