"""The ``p2pstack`` commands: key, id, node, ping, identify, perf, sim. Expected failures print
one line to stderr and exit 1; usage errors exit 2; an interrupt exits 130."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio

from p2pstack.connection import Connection
from p2pstack.errors import DialError, P2PError, ProtocolNotSupported
from p2pstack.events import ConnectionClosed, ConnectionOpened
from p2pstack.host import Host
from p2pstack.identity import Identity, KeyType
from p2pstack.roots.cli._malloc import tune_allocator
from p2pstack.roots.cli._parser import build_parser
from p2pstack.roots.cli._sim import run_sim
from p2pstack.roots.defaults import MUXERS, SECURITY, open_default_host
from protocols.identify import Identify
from protocols.perf import Perf
from protocols.ping import Ping

__all__ = ["main"]


class _Output:
    """Prints events as JSON lines (``--json``) or as text for people."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def event(self, name: str, text: str, **fields: object) -> None:
        if self.as_json:
            print(json.dumps({"event": name, **fields}), flush=True)
        else:
            print(text, flush=True)

    def record(self, fields: dict[str, object], text: str) -> None:
        print(json.dumps(fields) if self.as_json else text, flush=True)


def _load_identity(path: str | None) -> Identity:
    return Identity.load(path) if path else Identity.generate()


async def _cmd_key(args: argparse.Namespace) -> int:
    identity = Identity.generate(KeyType[args.type.upper()])
    try:
        identity.save(args.path, overwrite=args.force)
    except FileExistsError:
        raise _UserError(
            f"key file already exists: {args.path} (use --force to overwrite)"
        ) from None
    except OSError as exc:
        # Name the file asked for, not the temporary file the key is first written to.
        reason = (exc.strerror or str(exc)).lower()
        raise _UserError(f"cannot write key file {args.path}: {reason}") from None
    print(identity.peer_id)
    return 0


async def _cmd_id(args: argparse.Namespace) -> int:
    print(_load_identity(args.key).peer_id)
    return 0


async def _cmd_node(args: argparse.Namespace) -> int:
    out = _Output(args.json)
    async with open_default_host(
        identity=_load_identity(args.key),
        listen=args.listen or ["/ip4/127.0.0.1/tcp/0"],
        security=args.security or [],
        muxers=args.muxer or [],
    ) as host:
        # Signal handlers and the event subscription exist before "listening" is announced:
        # whoever reads that line may connect or send SIGTERM at once.
        with (
            host.subscribe() as events,
            anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
        ):
            addrs = [str(a) for a in host.addrs]
            out.event(
                "listening",
                f"peer ID {host.peer_id}\n" + "\n".join(f"listening on {a}" for a in addrs),
                peer_id=str(host.peer_id),
                addrs=addrs,
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(_report_connections, events, out)
                async for _ in signals:
                    break
                tg.cancel_scope.cancel()
    out.event("stopped", "stopped")
    return 0


async def _report_connections(events: anyio.abc.ObjectReceiveStream[object], out: _Output) -> None:
    async for event in events:
        if isinstance(event, ConnectionOpened | ConnectionClosed):
            conn = event.connection
            name = "connected" if isinstance(event, ConnectionOpened) else "disconnected"
            out.event(
                name,
                f"{name} {conn.direction} {conn.remote_peer} {conn.remote_multiaddr} "
                f"({conn.security_protocol}, {conn.muxer_protocol})",
                peer_id=str(conn.remote_peer),
                addr=str(conn.remote_multiaddr),
                direction=conn.direction,
                security=conn.security_protocol,
                muxer=conn.muxer_protocol,
            )


@asynccontextmanager
async def _connected(args: argparse.Namespace) -> AsyncIterator[tuple[Host, Connection]]:
    """A client host (the command's --key, --security, --muxer) connected to ``args.addr``
    within ``args.timeout``."""
    async with open_default_host(
        identity=_load_identity(args.key), security=args.security or [], muxers=args.muxer or []
    ) as host:
        with anyio.fail_after(args.timeout):
            conn = await host.connect(args.addr)
        yield host, conn


async def _cmd_ping(args: argparse.Namespace) -> int:
    out = _Output(args.json)
    async with _connected(args) as (host, conn):
        ping = host.service(Ping)
        rtts: list[float] = []
        for seq in range(args.count):
            try:
                rtt_ms = (await ping.ping(conn.remote_peer, timeout=args.timeout))[0] * 1000
            except (P2PError, TimeoutError, anyio.EndOfStream, anyio.BrokenResourceError) as exc:
                out.event(
                    "ping_failed",
                    f"ping {seq}: failed: {_describe(exc)}",
                    seq=seq,
                    error=_describe(exc),
                )
                continue
            rtts.append(rtt_ms)
            out.event("ping", f"ping {seq}: {rtt_ms:.3f} ms", seq=seq, rtt_ms=rtt_ms)
        ok = len(rtts)
        stats = {"min_ms": min(rtts), "avg_ms": sum(rtts) / ok, "max_ms": max(rtts)} if ok else {}
        summary = f"{ok}/{args.count} pings succeeded" + (
            f", rtt min/avg/max = {stats['min_ms']:.3f}/{stats['avg_ms']:.3f}/"
            f"{stats['max_ms']:.3f} ms"
            if ok
            else ""
        )
        out.event("done", summary, peer_id=str(conn.remote_peer), count=args.count, ok=ok, **stats)
        if ok < args.count:
            raise _UserError(f"{args.count - ok} of {args.count} pings failed")
        return 0


async def _cmd_identify(args: argparse.Namespace) -> int:
    out = _Output(args.json)
    async with _connected(args) as (host, conn):
        info = await host.service(Identify).identify(conn.remote_peer, timeout=args.timeout)
        fields: dict[str, object] = {
            "peer_id": str(info.peer_id),
            "agent_version": info.agent_version,
            "protocol_version": info.protocol_version,
            "protocols": list(info.protocols),
            "listen_addrs": [str(a) for a in info.listen_addrs],
            "observed_addr": str(info.observed_addr) if info.observed_addr else None,
        }
        width = max(len(k) for k in fields)
        text = "\n".join(
            f"{k:<{width}}  {', '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in fields.items()
        )
        out.record(fields, text)
        return 0


async def _cmd_perf(args: argparse.Namespace) -> int:
    out = _Output(args.json)
    async with _connected(args) as (host, conn):
        result = await host.service(Perf).measure(
            conn.remote_peer,
            upload_bytes=args.upload,
            download_bytes=args.download,
            timeout=args.timeout,
        )
        up_mbps = _mbps(result.upload_bytes, result.upload_seconds)
        down_mbps = _mbps(result.download_bytes, result.download_seconds)
        out.record(
            {
                "upload_bytes": result.upload_bytes,
                "download_bytes": result.download_bytes,
                "seconds": result.total_seconds,
                "upload_mbps": up_mbps,
                "download_mbps": down_mbps,
            },
            f"upload   {result.upload_bytes:>14,} bytes  {result.upload_seconds:8.3f} s  "
            f"{up_mbps:10.1f} Mbit/s\n"
            f"download {result.download_bytes:>14,} bytes  {result.download_seconds:8.3f} s  "
            f"{down_mbps:10.1f} Mbit/s",
        )
        return 0


def _mbps(nbytes: int, seconds: float) -> float:
    """Megabits (10^6 bits) per second, as libp2p perf tools report."""
    return nbytes * 8 / 1e6 / seconds if seconds > 0 else 0.0


_COMMANDS = {
    "key": _cmd_key,
    "id": _cmd_id,
    "node": _cmd_node,
    "ping": _cmd_ping,
    "identify": _cmd_identify,
    "perf": _cmd_perf,
}


class _UserError(Exception):
    """An expected failure: printed as one line."""


#: Errors of a byte stream whose connection went away under us (anyio's conventions).
_STREAM_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)
#: Failures reported as one line and exit status 1; anything else is a bug and shows a traceback.
_EXPECTED = (P2PError, _UserError, ValueError, OSError, TimeoutError, *_STREAM_ERRORS)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DialError) and len(exc.errors) == 1:
        addr, err = exc.errors[0]
        reason = _describe(err)
        # Transports name the address themselves ("dial ADDR failed: refused"); say it once.
        for prefix in (f"dial {addr} failed: ", f"dial {addr} "):
            reason = reason.removeprefix(prefix)
        return f"could not connect to {addr}: {reason}"
    if isinstance(exc, ProtocolNotSupported):
        return _describe_unsupported(exc)
    if isinstance(exc, TimeoutError) and not str(exc):
        return "timed out"
    if isinstance(exc, anyio.EndOfStream):
        return "the peer closed the connection"
    if isinstance(exc, anyio.BrokenResourceError | anyio.ClosedResourceError):
        return "the connection was lost"
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror.lower()
        return f"{exc.filename}: {reason}" if exc.filename is not None else reason
    return str(exc) or type(exc).__name__


def _describe_unsupported(exc: ProtocolNotSupported) -> str:
    """Say which layer failed: a peer without our security channel or muxer answers ``na``
    during the upgrade, which reads like a missing application protocol otherwise."""
    offered = ", ".join(exc.protocols)
    layers = (("security channel", SECURITY), ("stream muxer", MUXERS))
    for layer, factories in layers:
        known = {factory().protocol_id for factory in factories.values()}
        if exc.protocols and set(exc.protocols) <= known:
            return f"no {layer} in common with the peer (we offered {offered})"
    return str(exc)


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _run(args: argparse.Namespace) -> int:
    if args.command == "sim":  # runs its own virtual-time event loop
        return run_sim(args)
    # uvloop (the optional "uvloop" extra) speeds up asyncio; anyio uses it when asked.
    backend_options = {"use_uvloop": importlib.util.find_spec("uvloop") is not None}
    result: int = anyio.run(_COMMANDS[args.command], args, backend_options=backend_options)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``p2pstack`` console script."""
    args = build_parser().parse_args(argv)
    tune_allocator()
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except BaseException as group:
        exc = _leaf(group)
        if isinstance(exc, KeyboardInterrupt):
            return 130
        if isinstance(exc, _EXPECTED):
            timeout = getattr(args, "timeout", None)
            message = _describe(exc)
            if isinstance(exc, TimeoutError) and message == "timed out" and timeout:
                message = f"timed out after {timeout:g} s"
            print(f"p2pstack: error: {message}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
