"""``p2pstack node``: a node serving ping, identify and perf (and, with a DHT option, the
Kademlia DHT: ``_dht``; with ``--pubsub``/``--subscribe``, publish/subscribe: ``_pubsub``; with a
discovery source such as ``--bootstrap``, peer discovery: ``_discovery``) until SIGINT or
SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import attrs

from p2pstack.events import ConnectionClosed, ConnectionOpened
from p2pstack.host import HostConfig
from p2pstack.roots.cli._client import setup_timeouts
from p2pstack.roots.cli._common import Output, UserError, load_identity, run_async
from p2pstack.roots.cli._dht_args import node_wants_dht
from p2pstack.roots.cli._discovery_args import node_wants_discovery
from p2pstack.roots.cli._pubsub_args import node_wants_pubsub
from p2pstack.roots.defaults import default_services, open_default_host

if TYPE_CHECKING:
    from p2pstack.host import Host
    from p2pstack.metrics import MetricsServer
    from protocols.pubsub import Subscription

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


def _with_confirmations(config: HostConfig, confirmations: int) -> HostConfig:
    """``config`` with ``--observed-confirmations``."""
    if confirmations == config.addresses.confirmations:
        return config
    addresses = attrs.evolve(config.addresses, confirmations=confirmations)
    return attrs.evolve(config, addresses=addresses)


def run(args: argparse.Namespace) -> int:
    """Run the node until SIGINT or SIGTERM.

    Args:
        args: ``key``, ``listen``, ``security``, ``muxer``, ``timeout``, ``metrics``, ``json``,
            the DHT options (``dht``, ``bootstrap``, ``dht_protocol``, ``dht_namespace``),
            the pubsub options (``pubsub``, ``subscribe``) and ``mdns``, ``mdns_interval``.

    Returns:
        0 once stopped by a signal.

    Raises:
        UserError: ``--metrics`` is not ``host:port`` or prometheus-client is not installed; a
            ``--bootstrap`` value neither ends in ``/p2p/<peer-id>`` nor is ``/dnsaddr/``.
    """
    if args.metrics is not None:
        check_metrics_option(args.metrics)
    if args.dcutr_allow_private and not args.dcutr:
        raise UserError("--dcutr-allow-private needs --dcutr")
    if args.bootstrap:  # the bootstrap list's (and the DHT's or pubsub's) peers
        from p2pstack.roots.cli._discovery import check_bootstrap_entries

        check_bootstrap_entries(args.bootstrap)
    if args.rendezvous or args.namespace:
        from p2pstack.roots.cli._rendezvous import check_rendezvous_options

        check_rendezvous_options(args)
    from p2pstack.roots.cli._relay_service import check_relay_service_options

    check_relay_service_options(args)
    if args.relay or args.auto_relay:
        from p2pstack.roots.cli._relay_client import check_relay_options

        check_relay_options(args)
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


@attrs.frozen
class _Parts:
    """What the options add to the node: the DHT mode, the pubsub router, discovery, their
    events."""

    dht: str | None
    router: str | None
    discovery: bool
    describers: tuple[Callable[[object], tuple[str, str, dict[str, object]] | None], ...]


def _parts(args: argparse.Namespace) -> _Parts:
    describers = []
    dht = node_wants_dht(args)
    router = node_wants_pubsub(args)
    discovery = node_wants_discovery(args)
    if discovery:
        from p2pstack.roots.cli._discovery import discovery_event

        describers.append(discovery_event)
    if dht is not None:
        from p2pstack.roots.cli._dht import kad_event

        describers.append(kad_event)
    if router is not None:
        from p2pstack.roots.cli._pubsub import pubsub_event

        describers.append(pubsub_event)
    if args.membership:
        from p2pstack.roots.cli._membership import member_event

        describers.append(member_event)
    if args.relay_service:
        from p2pstack.roots.cli._relay_service import relay_event as relay_service_event

        describers.append(relay_service_event)
    if args.relay or args.auto_relay or args.autonat:
        from p2pstack.roots.cli._relay_client import relay_event

        describers.append(relay_event)
    if args.autonat:
        from p2pstack.roots.cli._autonat import autonat_event

        describers.append(autonat_event)
    if args.dcutr:
        from p2pstack.roots.cli._dcutr import holepunch_event

        describers.append(holepunch_event)
    return _Parts(dht, router, discovery, tuple(describers))


async def _serve(args: argparse.Namespace) -> int:
    out = Output(args.json)
    parts = _parts(args)
    kad_config = services = None
    if parts.dht is not None:
        from p2pstack.roots.cli import _dht

        kad_config = _dht.kad_config(args, parts.dht)
        if parts.discovery:
            kad_config = attrs.evolve(kad_config, random_walk_interval=args.random_walk)
    sources = discovery_config = None
    if parts.discovery:
        from p2pstack.roots.cli import _discovery

        sources = _discovery.node_sources(args)
        discovery_config = _discovery.discovery_config(args)
    if parts.router is not None:
        from p2pstack.roots.cli import _pubsub

        services = _pubsub.node_services(parts.router)
    if args.rendezvous_point:
        from p2pstack.roots.cli._rendezvous import rendezvous_services

        services = [*(services or default_services(serve_perf=True)), *rendezvous_services(args)]
    if args.membership:
        from p2pstack.roots.cli._membership import membership_service

        services = [*(services or default_services(serve_perf=True)), membership_service(args)]
    if args.relay_service:
        from p2pstack.roots.cli._relay_service import relay_services

        services = [*(services or default_services(serve_perf=True)), *relay_services(args)]
    circuit = None
    if args.auto_relay or (args.autonat and not args.relay):
        from p2pstack.roots.cli._relay_client import node_auto_relay

        circuit, relay_service = node_auto_relay(args, dht=parts.dht is not None)
        services = [*(services or default_services(serve_perf=True)), relay_service]
    if args.autonat:
        from p2pstack.roots.cli._autonat import node_autonat_services

        services = [*(services or default_services(serve_perf=True)), *node_autonat_services(args)]
    transports = None
    if args.dcutr:
        from p2pstack.roots.cli._dcutr import dcutr_setup

        transports, dcutr = dcutr_setup(args)
        services = [*(services or default_services(serve_perf=True)), dcutr]
    async with open_default_host(
        identity=load_identity(args.key),
        listen=args.listen or ["/ip4/127.0.0.1/tcp/0"],
        security=args.security or [],
        muxers=args.muxer or [],
        config=_with_confirmations(node_config(args.timeout), args.observed_confirmations),
        serve_perf=True,  # interop tests and users measure against a node: capped per peer
        services=services,
        kad=kad_config,
        discovery=sources,
        discovery_config=discovery_config,
        circuit=circuit,
        transports=transports,
    ) as host:
        # Signal handlers, the event subscription and the topics exist before "listening" is
        # announced: whoever reads that line may connect or send SIGTERM at once.
        with (
            host.subscribe() as events,
            anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
            _start_metrics(args.metrics, host) as metrics,
            _subscribed(host, parts.router, args.subscribe) as subscriptions,
        ):
            if args.relay and not args.auto_relay:
                from p2pstack.roots.cli._relay_client import listen_via_relays

                await listen_via_relays(host, args)
            _announce(host, out, args, parts, metrics)
            if parts.discovery:  # what was found while the host started, before the subscription
                from p2pstack.roots.cli._discovery import report_announced

                report_announced(host, out)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_report_events, events, out, parts.describers)
                _start_work(tg, host, args, out, parts=parts, subscriptions=subscriptions)
                async for _ in signals:
                    break
                tg.cancel_scope.cancel()
    out.event("stopped", "stopped")
    return 0


@contextlib.contextmanager
def _subscribed(host: Host, router: str | None, topics: list[str]) -> Iterator[list[Subscription]]:
    """The node's ``--subscribe`` subscriptions, closed on exit."""
    if router is None:
        yield []
        return
    from protocols.pubsub import Pubsub

    pubsub = host.service(Pubsub)
    subscriptions = [pubsub.subscribe(topic) for topic in dict.fromkeys(topics)]
    try:
        yield subscriptions
    finally:
        for subscription in subscriptions:
            subscription.close()


def _announce(
    host: Host,
    out: Output,
    args: argparse.Namespace,
    parts: _Parts,
    metrics: MetricsServer | None,
) -> None:
    """Print the ``listening`` event."""
    addrs = [str(a) for a in host.addrs]
    text = [f"peer ID {host.peer_id}", *(f"listening on {a}" for a in addrs)]
    extra: dict[str, object] = {}
    if metrics is not None:
        text.append(f"metrics at {metrics.url}")
        extra["metrics"] = metrics.url
    if parts.dht is not None:
        text.append(f"DHT {parts.dht} ({args.dht_protocol})")
        extra["dht"] = parts.dht
    if args.mdns:
        text.append(f"mDNS discovery every {args.mdns_interval:g} s")
        extra["mdns"] = True
    if parts.router is not None:
        topics = list(dict.fromkeys(args.subscribe))
        text.append(f"pubsub {parts.router}" + (f", topics: {' '.join(topics)}" if topics else ""))
        extra.update(pubsub=parts.router, topics=topics)
    if parts.discovery:
        from p2pstack.roots.cli._discovery import source_names

        names = source_names(host)
        text.append(f"discovery: {', '.join(names)}")
        extra["discovery"] = names
    out.event("listening", "\n".join(text), peer_id=str(host.peer_id), addrs=addrs, **extra)


def _start_work(
    tg: anyio.abc.TaskGroup,
    host: Host,
    args: argparse.Namespace,
    out: Output,
    *,
    parts: _Parts,
    subscriptions: list[Subscription],
) -> None:
    """Start printing messages, and joining through ``--bootstrap`` (its ``/p2p/`` entries;
    the discovery service dials the peers of ``/dnsaddr/`` ones)."""
    timeout = args.timeout or BOOTSTRAP_TIMEOUT
    bootstrap = args.bootstrap
    if bootstrap:
        from p2pstack.roots.cli._discovery import direct_bootstrap

        bootstrap = direct_bootstrap(bootstrap)
    if parts.router is not None:
        from p2pstack.roots.cli import _pubsub

        for subscription in subscriptions:
            tg.start_soon(_pubsub.print_messages, subscription, out)
        if bootstrap and parts.dht is None:  # else the DHT's join connects
            tg.start_soon(_pubsub.report_join, host, bootstrap, out, timeout)
    if parts.dht is not None and bootstrap:
        from p2pstack.roots.cli import _dht

        tg.start_soon(_dht.report_join, host, bootstrap, out, timeout)
    if args.membership and bootstrap:
        from p2pstack.roots.cli import _membership

        tg.start_soon(_membership.report_join, host, bootstrap, out, timeout)


async def _report_events(
    events: anyio.abc.ObjectReceiveStream[object],
    out: Output,
    describers: Sequence[Callable[[object], tuple[str, str, dict[str, object]] | None]],
) -> None:
    """Print connections and disconnections, and what ``describers`` name (DHT and pubsub
    events)."""
    async for event in events:
        described = next(filter(None, (describe(event) for describe in describers)), None)
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
