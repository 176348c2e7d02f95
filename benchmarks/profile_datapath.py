"""Profile the p2pstack data path: perf throughput over TCP + Noise + a muxer between two
processes (https://github.com/libp2p/specs/blob/master/perf/perf.md), CPU time and page faults
per side, an optional py-spy profile summarised per 64 KiB of payload, and dial + upgrade +
first ping latency.

Not part of the test suite. Examples::

    python benchmarks/profile_datapath.py throughput --runs 3 --size 256MiB
    python benchmarks/profile_datapath.py throughput --muxer mplex --malloc-tuned
    python benchmarks/profile_datapath.py throughput --py-spy --size 512MiB
    python benchmarks/profile_datapath.py dial --count 200
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

_BIN = Path(sys.executable).parent
_ADDR = re.compile(r"/ip4/127\.0\.0\.1/tcp/\d+/p2p/\w+")
#: Environment key (read by nothing else) that carries the source tree to run from.
_TREE = "P2PSTACK_PROFILE_TREE"


def _sizes(text: str) -> int:
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(text[: -len(unit)]) * factor
    return int(text)


def _environment(args: argparse.Namespace) -> dict[str, str]:
    """The children's environment: malloc tuning, another source tree, uvloop hidden."""
    env = dict(os.environ)
    if not getattr(args, "malloc_tuned", False):
        # The CLI tunes glibc's allocator itself (p2pstack.roots.cli._malloc) unless told not to.
        env["P2PSTACK_MALLOC_TUNING"] = "0"
    paths = []
    if getattr(args, "no_uvloop", False):
        # A sitecustomize that makes ``find_spec("uvloop")`` answer None: the CLI then runs
        # on the plain asyncio loop.
        hide = Path(tempfile.mkdtemp(prefix="p2pstack-nouvloop-"))
        (hide / "sitecustomize.py").write_text('import sys\nsys.modules["uvloop"] = None\n')
        paths.append(str(hide))
    if getattr(args, "tree", None):
        env[_TREE] = str(Path(args.tree).resolve())
        paths.append(env[_TREE])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    return env


def _spawn(args: list[str], env: dict[str, str], spy: Path | None) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "p2pstack.roots.cli", *args]
    if spy is not None:
        cmd = [str(_BIN / "py-spy"), "record", "-r", "500", "-f", "raw", "-o", str(spy), "--", *cmd]
    # A file, not a pipe: a node prints an event per connection and must never block on it.
    out = tempfile.TemporaryFile("w+")  # noqa: SIM115  # closed with the process object
    # The working directory leads sys.path under ``-m``: run from the tree being measured.
    cwd = env.get(_TREE)
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.DEVNULL, text=True)
    proc.stdout = out
    return proc


def _address(proc: subprocess.Popen[str]) -> str:
    """Wait for ``proc`` (a node) to print its listening address."""
    assert proc.stdout is not None
    for _ in range(1000):
        proc.stdout.seek(0)
        if found := _ADDR.search(proc.stdout.read()):
            return found.group(0)
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    raise SystemExit("node did not start listening")


def _interrupt(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C a node; under py-spy, its child (py-spy then writes the profile and exits)."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    pids = children.read_text().split() if children.exists() else []
    for pid in pids or [str(proc.pid)]:
        os.kill(int(pid), 2)


def _wait(proc: subprocess.Popen[str]) -> tuple[str, float, int]:
    """Reap ``proc``; return its stdout, CPU seconds (user + sys) and minor page faults."""
    _, _, usage = os.wait4(proc.pid, 0)
    assert proc.stdout is not None
    proc.stdout.seek(0)
    out = proc.stdout.read()
    proc.returncode = 0
    return out, usage.ru_utime + usage.ru_stime, usage.ru_minflt


def _one_run(
    args: argparse.Namespace, env: dict[str, str], spy_dir: Path | None
) -> dict[str, float]:
    mux = ["--muxer", args.muxer]
    node = _spawn(["node", "--json", *mux], env, spy_dir / "node.txt" if spy_dir else None)
    addr = _address(node)
    size = str(args.bytes)
    client = _spawn(
        ["perf", "--json", "--timeout", "300", *mux, "--upload", size, "--download", size, addr],
        env,
        spy_dir / "client.txt" if spy_dir else None,
    )
    out, client_cpu, client_faults = _wait(client)
    _interrupt(node)
    _, node_cpu, node_faults = _wait(node)
    result = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    return {
        "up_MBps": args.bytes / result["upload_seconds"] / 1e6
        if "upload_seconds" in result
        else result["upload_mbps"] / 8,
        "down_MBps": result["download_mbps"] / 8,
        "client_cpu_s": client_cpu,
        "node_cpu_s": node_cpu,
        "client_faults": client_faults,
        "node_faults": node_faults,
    }


def _summarise_profile(path: Path, payload: int) -> None:
    """Print the top self and inclusive costs of a py-spy raw profile, per 64 KiB of payload."""
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r"\s*\((.*/)?([^/]+?)(:\d+)?\)$", r" (\2)", f) for f in stack.split(";")]
        self_t[frames[-1]] += int(count)
        for frame in set(frames):
            incl[frame] += int(count)
    per_64k = 1e6 / 500 / (payload / 65536)  # microseconds per sample per 64 KiB
    print(f"-- {path.name}: microseconds per 64 KiB of payload (self | inclusive)")
    for frame, n in self_t.most_common(12):
        print(f"  self {n * per_64k:7.1f}  {frame}")
    for frame, n in incl.most_common(30):
        if "importlib" not in frame and "runpy" not in frame:
            print(f"  incl {n * per_64k:7.1f}  {frame}")


def _throughput(args: argparse.Namespace) -> None:
    env = _environment(args)
    spy_dir = Path(tempfile.mkdtemp(prefix="p2pstack-prof-")) if args.py_spy else None
    runs = [_one_run(args, env, spy_dir) for _ in range(1 if spy_dir else args.runs)]
    keys = runs[0].keys()
    print(
        f"{args.muxer}, {args.size} each way, runs={len(runs)}, tree={args.tree or '.'},"
        f" uvloop={not args.no_uvloop}, malloc_tuned={args.malloc_tuned}"
    )
    for key in keys:
        values = [r[key] for r in runs]
        print(f"  {key:14} median {statistics.median(values):10.2f}  all {values}")
    if spy_dir is not None:
        for name in ("client.txt", "node.txt"):
            _summarise_profile(spy_dir / name, 2 * args.bytes)
        shutil.rmtree(spy_dir)


async def _dial(args: argparse.Namespace) -> None:
    from p2pstack import open_host
    from protocols.ping import Ping
    from transports.noise import Noise
    from transports.tcp import TcpTransport
    from transports.yamux import Yamux

    def host(listen: list[str]):  # type: ignore[no-untyped-def]  # a local shorthand
        return open_host(
            transports=[TcpTransport()],
            security=[Noise()],
            muxers=[Yamux()],
            services=[Ping()],
            listen=listen,
        )

    server_proc = None
    if args.remote:
        # The listener in its own process, as a real peer would be.
        server_proc = _spawn(["node", "--json"], dict(os.environ), None)
        target = _address(server_proc)
    times = []
    try:
        async with host(["/ip4/127.0.0.1/tcp/0"]) as server, host([]) as client:
            addr = target if server_proc else server.addrs[0]
            for _ in range(args.count):
                start = time.perf_counter()
                conn = await client.connect(addr)
                await client.service(Ping).ping(conn.remote_peer)
                times.append(time.perf_counter() - start)
                await client.disconnect(conn.remote_peer)
    finally:
        if server_proc is not None:
            _interrupt(server_proc)
            server_proc.wait()
    times.sort()
    print(
        f"dial+upgrade+first ping over {args.count}: median {statistics.median(times) * 1e3:.2f} ms"
        f" p99 {times[int(0.99 * (len(times) - 1))] * 1e3:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    thr = sub.add_parser("throughput")
    thr.add_argument("--muxer", default="yamux", choices=["yamux", "mplex"])
    thr.add_argument("--size", default="256MiB")
    thr.add_argument("--runs", type=int, default=3)
    thr.add_argument("--malloc-tuned", action="store_true", help="let the CLI tune glibc malloc")
    thr.add_argument("--py-spy", action="store_true", help="profile one run with py-spy")
    thr.add_argument("--no-uvloop", action="store_true", help="run the CLI on plain asyncio")
    thr.add_argument("--tree", help="run the CLI from this source tree (a before/after check)")
    dial = sub.add_parser("dial")
    dial.add_argument("--count", type=int, default=200)
    dial.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    dial.add_argument("--remote", action="store_true", help="dial a `p2pstack node` process")
    args = parser.parse_args()
    if args.command == "throughput":
        args.bytes = _sizes(args.size)
        _throughput(args)
    else:
        options = {"use_uvloop": True} if args.backend == "asyncio" else {}
        try:
            anyio.run(_dial, args, backend=args.backend, backend_options=options)
        except ModuleNotFoundError:
            anyio.run(_dial, args, backend=args.backend)


if __name__ == "__main__":
    main()
