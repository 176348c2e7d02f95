"""The client commands: ``p2pstack ping``, ``identify`` and ``perf``. Each connects to one peer
within ``--timeout`` (dial, upgrade) and bounds each request by it too."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import attrs

from p2pstack.connection import Connection
from p2pstack.errors import NETWORK_ERRORS, RemoteProtocolError, StreamReset
from p2pstack.host import Host, HostConfig
from p2pstack.roots.cli._common import Output, UserError, load_identity, run_async
from p2pstack.roots.cli._errors import STREAM_ERRORS, describe, describe_connect_failure
from p2pstack.roots.defaults import open_default_host
from protocols.identify import Identify
from protocols.perf import Perf
from protocols.ping import Ping

__all__ = ["client_config", "run_identify", "run_perf", "run_ping", "setup_timeouts"]


#: HostConfig deadlines of closing rather than of connecting: never changed by ``--timeout``.
TEARDOWN_TIMEOUTS = frozenset({"close_timeout", "drain_timeout", "service_stop_timeout"})


def setup_timeouts() -> list[str]:
    """The names of the HostConfig deadlines that bound setting up and using a connection: every
    ``*_timeout`` field but the teardown ones (dial, upgrade and its stages, negotiation).

    Returns:
        Field names of :class:`~p2pstack.host.HostConfig`.
    """
    fields = attrs.fields(HostConfig)
    return [
        f.name for f in fields if f.name.endswith("_timeout") and f.name not in TEARDOWN_TIMEOUTS
    ]


def client_config(timeout: float) -> HostConfig:
    """The client host's configuration: every connection set-up deadline is ``--timeout``.

    Args:
        timeout: seconds.

    Returns:
        A config whose dial, upgrade (and upgrade stage) and stream negotiation deadlines are
        ``timeout`` (the library's defaults would otherwise cut a slow upgrade at 15 s whatever
        ``--timeout``).
    """
    changes: dict[str, Any] = dict.fromkeys(setup_timeouts(), timeout)
    return attrs.evolve(HostConfig(), **changes)


@asynccontextmanager
async def _connected(args: argparse.Namespace) -> AsyncIterator[tuple[Host, Connection]]:
    """A client host (the command's --key, --security, --muxer) connected to ``args.addr``
    within ``args.timeout``."""
    async with open_default_host(
        identity=load_identity(args.key),
        security=args.security or [],
        muxers=args.muxer or [],
        config=client_config(args.timeout),
    ) as host:
        try:
            with anyio.fail_after(args.timeout):
                conn = await host.connect(args.addr)
        except NETWORK_ERRORS as exc:
            message = describe_connect_failure(exc)
            if message is None:
                raise
            raise UserError(message) from exc
        yield host, conn


def run_ping(args: argparse.Namespace) -> int:
    """``ping ADDR [-c N]``: ping a peer ``N`` times; exit 1 if any ping failed.

    Args:
        args: ``addr``, ``count``, ``timeout`` and the stack options.

    Returns:
        0 when every ping succeeded.

    Raises:
        UserError: some pings failed, or the peer could not be reached.
    """
    return run_async(_ping, args)


async def _ping(args: argparse.Namespace) -> int:
    out = Output(args.json)
    async with _connected(args) as (host, conn):
        ping = host.service(Ping)
        rtts: list[float] = []
        for seq in range(args.count):
            try:
                rtt_ms = (await ping.ping(conn.remote_peer, timeout=args.timeout))[0] * 1000
            except NETWORK_ERRORS as exc:
                out.event(
                    "ping_failed",
                    f"ping {seq}: failed: {describe(exc)}",
                    seq=seq,
                    error=describe(exc),
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
            raise UserError(f"{args.count - ok} of {args.count} pings failed")
        return 0


def run_identify(args: argparse.Namespace) -> int:
    """``identify ADDR``: print what a peer says about itself.

    Args:
        args: ``addr``, ``timeout`` and the stack options.

    Returns:
        0.
    """
    return run_async(_identify, args)


async def _identify(args: argparse.Namespace) -> int:
    out = Output(args.json)
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


def run_perf(args: argparse.Namespace) -> int:
    """``perf ADDR --upload N --download M``: measure throughput with /perf/1.0.0.

    Args:
        args: ``addr``, ``upload``, ``download``, ``timeout`` and the stack options.

    Returns:
        0.

    Raises:
        UserError: the peer ended or reset the perf stream early (typically a size over its
            cap).
    """
    return run_async(_perf, args)


async def _perf(args: argparse.Namespace) -> int:
    out = Output(args.json)
    async with _connected(args) as (host, conn):
        try:
            result = await host.service(Perf).measure(
                conn.remote_peer,
                upload_bytes=args.upload,
                download_bytes=args.download,
                timeout=args.timeout,
            )
        except (StreamReset, RemoteProtocolError, *STREAM_ERRORS) as exc:
            # A server cuts a request it will not serve short (ends or resets the stream):
            # name the likely cause rather than "yamux stream 1 was reset".
            how = "it reset the stream" if isinstance(exc, StreamReset) else describe(exc)
            raise UserError(
                f"the peer ended the perf exchange early ({how}): the upload of "
                f"{args.upload:,} or the download of {args.download:,} bytes may be over the "
                "server's cap"
            ) from exc
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
