"""``p2pstack node``: a node serving ping, identify and perf until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import signal
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import attrs

from p2pstack.events import ConnectionClosed, ConnectionOpened
from p2pstack.host import HostConfig
from p2pstack.roots.cli._client import setup_timeouts
from p2pstack.roots.cli._common import Output, UserError, load_identity, run_async
from p2pstack.roots.defaults import open_default_host

if TYPE_CHECKING:
    from p2pstack.host import Host
    from p2pstack.metrics import MetricsServer

__all__ = ["node_config", "run"]


def node_config(timeout: float | None) -> HostConfig:
    """The node's host configuration for ``--timeout``.

    Args:
        timeout: the per-connection deadline in seconds, or None for the library's defaults.

    Returns:
        A config whose upgrade deadline (security and muxer negotiation of each connection) and
        per-stream protocol negotiation deadline are ``timeout``; the other set-up deadlines
        (dial, and the upgrade's early stages where the library has them, such as the time to
        the first byte) keep the library's values, capped at ``timeout``.
    """
    config = HostConfig()
    if timeout is None:
        return config
    changes: dict[str, Any] = {n: min(getattr(config, n), timeout) for n in setup_timeouts()}
    changes.update(upgrade_timeout=timeout, negotiate_timeout=timeout)
    return attrs.evolve(config, **changes)


def run(args: argparse.Namespace) -> int:
    """Run the node until SIGINT or SIGTERM.

    Args:
        args: ``key``, ``listen``, ``security``, ``muxer``, ``timeout``, ``metrics``, ``json``.

    Returns:
        0 once stopped by a signal.

    Raises:
        UserError: ``--metrics`` is not ``host:port`` or prometheus-client is not installed.
    """
    if args.metrics is not None:
        check_metrics_option(args.metrics)
    return run_async(_serve, args)


def check_metrics_option(addr: str) -> None:
    """Fail before the node starts if ``--metrics ADDR`` cannot be served.

    Args:
        addr: the option's value.

    Raises:
        UserError: ``addr`` is not ``host:port``, or prometheus-client is not installed.
    """
    from p2pstack.metrics import parse_listen_addr

    try:
        parse_listen_addr(addr)
    except ValueError as exc:
        raise UserError(f"--metrics: {exc}") from None
    try:
        import prometheus_client  # noqa: F401  (only whether it is there)
    except ImportError:
        raise UserError(
            "--metrics needs prometheus-client: pip install 'p2pstack[metrics]'"
        ) from None


def _start_metrics(
    addr: str | None, host: Host
) -> contextlib.AbstractContextManager[MetricsServer | None]:
    if addr is None:
        return contextlib.nullcontext()
    from p2pstack.metrics import start_metrics_server

    return start_metrics_server(addr, resource_manager=host.resource_manager, host=host)


async def _serve(args: argparse.Namespace) -> int:
    out = Output(args.json)
    async with open_default_host(
        identity=load_identity(args.key),
        listen=args.listen or ["/ip4/127.0.0.1/tcp/0"],
        security=args.security or [],
        muxers=args.muxer or [],
        config=node_config(args.timeout),
        serve_perf=True,  # interop tests and users measure against a node: capped per peer
    ) as host:
        # Signal handlers and the event subscription exist before "listening" is announced:
        # whoever reads that line may connect or send SIGTERM at once.
        with (
            host.subscribe() as events,
            anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
            _start_metrics(args.metrics, host) as metrics,
        ):
            addrs = [str(a) for a in host.addrs]
            text = [f"peer ID {host.peer_id}", *(f"listening on {a}" for a in addrs)]
            extra: dict[str, object] = {}
            if metrics is not None:
                text.append(f"metrics at {metrics.url}")
                extra["metrics"] = metrics.url
            out.event("listening", "\n".join(text), peer_id=str(host.peer_id), addrs=addrs, **extra)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_report_connections, events, out)
                async for _ in signals:
                    break
                tg.cancel_scope.cancel()
    out.event("stopped", "stopped")
    return 0


async def _report_connections(events: anyio.abc.ObjectReceiveStream[object], out: Output) -> None:
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
