"""p2pd-compatible daemons as subprocesses, for the daemon-client tests and the benchmark: each
is started with p2pd's flags and a control socket on ``/ip4/127.0.0.1/tcp/0``, and is ready when
it prints ``Control socket: MA`` and ``Peer ID: ID`` (go p2pd's banner).

``DAEMONS`` names the daemon commands every parametrized test runs against; adding a daemon is
one line there (``P2PSTACK_DAEMONS=js,p2pstack`` picks a subset at run time).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import attrs
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

HERE = Path(__file__).resolve().parent
JS_NODE = HERE / "js" / "node_modules" / ".bin" / "node"

#: Daemon name -> argv prefix (p2pd flags follow).
DAEMONS: dict[str, list[str]] = {
    "js": [str(JS_NODE), str(HERE / "js" / "js_daemon.mjs")],
    "p2pstack": [sys.executable, "-m", "p2pstack.roots.cli", "daemon"],
}
#: The control socket a test daemon gets unless told otherwise: TCP on a free port.
TCP_CONTROL = "/ip4/127.0.0.1/tcp/0"
#: The flags every test daemon gets: its control socket, libp2p on loopback only.
BASE_FLAGS = [f"-listen={TCP_CONTROL}", "-hostAddrs=/ip4/127.0.0.1/tcp/0"]
READY_TIMEOUT = 60.0  # seconds for a daemon to print its banner on a loaded 2-core machine


def selected() -> list[str]:
    """The daemon names to test: all of ``DAEMONS``, or those in ``$P2PSTACK_DAEMONS``."""
    names = os.environ.get("P2PSTACK_DAEMONS")
    if not names:
        return list(DAEMONS)
    return [n for n in names.split(",") if n in DAEMONS]


def command(kind: str, flags: Sequence[str], control: str = TCP_CONTROL) -> list[str]:
    """The full argv of daemon ``kind``: the base flags (with ``control`` as ``-listen``), then
    ``flags``."""
    argv = DAEMONS[kind]
    if argv[0].endswith("node") and not Path(argv[0]).exists():
        raise AssertionError(f"{argv[0]} missing: run `make interop-setup`")
    return [*argv, f"-listen={control}", *BASE_FLAGS[1:], *flags]


@attrs.frozen
class Banner:
    """What a daemon printed at start."""

    control: str
    peer_id: str


def parse_banner_line(line: str, found: dict[str, str]) -> None:
    """Record a ``Control socket:`` or ``Peer ID:`` line into ``found``."""
    for key, prefix in (("control", "Control socket:"), ("peer_id", "Peer ID:")):
        if line.startswith(prefix):
            found[key] = line[len(prefix) :].strip()


@attrs.define
class DaemonProcess:
    """A running daemon (async)."""

    kind: str
    process: Process
    banner: Banner

    @property
    def control(self) -> str:
        return self.banner.control


@asynccontextmanager
async def run_daemon(
    kind: str, flags: Sequence[str] = (), *, log_dir: Path, control: str = TCP_CONTROL
) -> AsyncIterator[DaemonProcess]:
    """Start daemon ``kind`` (control socket ``control``) and wait for its banner; stop it
    (SIGTERM, then kill) on exit."""
    stderr_path = log_dir / f"daemon-{kind}-{time.monotonic_ns()}.stderr"
    with stderr_path.open("wb") as stderr:
        process = await anyio.open_process(
            command(kind, flags, control), stdin=subprocess.DEVNULL, stderr=stderr
        )
    try:
        assert process.stdout is not None
        lines = BufferedByteReceiveStream(process.stdout)
        found: dict[str, str] = {}
        try:
            with anyio.fail_after(READY_TIMEOUT):
                while len(found) < 2:
                    line = await lines.receive_until(b"\n", 65536)
                    parse_banner_line(line.decode(), found)
        except (TimeoutError, anyio.EndOfStream, anyio.IncompleteRead):
            raise AssertionError(
                f"{kind} daemon gave no banner: {stderr_path.read_text()[-2000:]}"
            ) from None
        yield DaemonProcess(kind, process, Banner(found["control"], found["peer_id"]))
    finally:
        await _stop(process)


async def _stop(process: Process) -> None:
    if process.returncode is None:
        process.terminate()
        with anyio.move_on_after(10, shield=True):
            await process.wait()
    if process.returncode is None:
        process.kill()
        with anyio.move_on_after(5, shield=True):
            await process.wait()
    await process.aclose()


def start_daemon_sync(
    argv: Sequence[str], timeout: float = READY_TIMEOUT
) -> tuple[subprocess.Popen[bytes], Banner]:
    """Start a daemon from its full argv without an event loop (benchmark, p2pclient tests);
    the caller stops it with :func:`stop_sync`."""
    proc = spawn_sync(argv)
    return proc, wait_banner_sync(proc, timeout)


def spawn_sync(argv: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start a daemon; :func:`wait_banner_sync` waits for it (start several, then wait)."""
    return subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
    )


def wait_banner_sync(proc: subprocess.Popen[bytes], timeout: float = READY_TIMEOUT) -> Banner:
    """The banner of a daemon started by :func:`spawn_sync` (stops it on failure). Reads the
    pipe's file descriptor directly: a buffered reader would hide lines from ``select``."""
    found: dict[str, str] = {}
    end = time.monotonic() + timeout
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    pending = b""
    while len(found) < 2:
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            stop_sync(proc)
            raise TimeoutError(f"no daemon banner from {proc.args!r} in {timeout} s")
        chunk = os.read(fd, 65536)
        if not chunk:
            stop_sync(proc)
            raise RuntimeError(f"daemon {proc.args!r} exited ({proc.poll()}) before its banner")
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            parse_banner_line(line.decode(errors="replace"), found)
    return Banner(found["control"], found["peer_id"])


def stop_sync(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then kill after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


__all__ = [
    "BASE_FLAGS",
    "DAEMONS",
    "TCP_CONTROL",
    "Banner",
    "DaemonProcess",
    "command",
    "run_daemon",
    "selected",
    "spawn_sync",
    "start_daemon_sync",
    "stop_sync",
    "wait_banner_sync",
]
