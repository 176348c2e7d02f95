"""``p2pstack node``: a node serving ping, identify and perf (and, with a DHT option, the
Kademlia DHT: ``_dht``) until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import attrs

from p2pstack.events import ConnectionClosed, ConnectionOpened
from p2pstack.host import HostConfig
from p2pstack.roots.cli._client import setup_timeouts
from p2pstack.roots.cli._common import Output, UserError, load_identity, run_async
from p2pstack.roots.cli._dht_args import node_wants_dht
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
        args: ``key``, ``listen``, ``security``, ``muxer``, ``timeout``, ``metrics``, ``json``
            and the DHT options (``dht``, ``bootstrap``, ``dht_protocol``, ``dht_namespace``).

    Returns:
        0 once stopped by a signal.

    Raises:
        UserError: ``--metrics`` is not ``host:port`` or prometheus-client is not installed; a
            ``--bootstrap`` value is not a multiaddr ending in ``/p2p/<peer-id>``.
    """
    if args.metrics is not None:
        check_metrics_option(args.metrics)
    if args.bootstrap:  # a DHT option: the node runs the DHT
        from p2pstack.roots.cli._dht import check_bootstrap_option

        check_bootstrap_option(args.bootstrap)
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


#: Seconds ``node --bootstrap`` gives its connections and first lookup (without ``--timeout``).
BOOTSTRAP_TIMEOUT = 60.0


async def _serve(args: argparse.Namespace) -> int:
    out = Output(args.json)
    dht = node_wants_dht(args)
    kad_config = None
    describe_event: Callable[[object], tuple[str, str, dict[str, object]] | None]
    describe_event = _no_description
    if dht is not None:
        from p2pstack.roots.cli import _dht

        kad_config = _dht.kad_config(args, dht)
        describe_event = _dht.kad_event
    async with open_default_host(
        identity=load_identity(args.key),
        listen=args.listen or ["/ip4/127.0.0.1/tcp/0"],
        security=args.security or [],
        muxers=args.muxer or [],
        config=node_config(args.timeout),
        serve_perf=True,  # interop tests and users measure against a node: capped per peer
        kad=kad_config,
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
            if dht is not None:
                text.append(f"DHT {dht} ({args.dht_protocol})")
                extra["dht"] = dht
            out.event("listening", "\n".join(text), peer_id=str(host.peer_id), addrs=addrs, **extra)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_report_events, events, out, describe_event)
                if dht is not None and args.bootstrap:
                    timeout = args.timeout or BOOTSTRAP_TIMEOUT
                    tg.start_soon(_dht.report_join, host, args.bootstrap, out, timeout)
                async for _ in signals:
                    break
                tg.cancel_scope.cancel()
    out.event("stopped", "stopped")
    return 0


def _no_description(_event: object) -> tuple[str, str, dict[str, object]] | None:
    return None


async def _report_events(
    events: anyio.abc.ObjectReceiveStream[object],
    out: Output,
    describe_event: Callable[[object], tuple[str, str, dict[str, object]] | None],
) -> None:
    """Print connections and disconnections, and what ``describe_event`` names (DHT events)."""
    async for event in events:
        described = describe_event(event)
        if described is not None:
            name, text, fields = described
            out.event(name, text, **fields)
        elif isinstance(event, ConnectionOpened | ConnectionClosed):
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
