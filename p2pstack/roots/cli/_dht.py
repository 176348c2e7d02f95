"""``p2pstack dht ACTION``: an ephemeral DHT client that connects to every ``--bootstrap`` peer,
does one job (put, get, provide, find-providers, find-peer), prints it and exits; and the DHT
part of ``p2pstack node`` (its configuration, joining through ``--bootstrap``, routing table
events). Shapes: issue 10, item 8; README, "The command line"; docs/kad.md."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
import attrs
from multiaddr import Multiaddr

from p2pstack.errors import NETWORK_ERRORS, InvalidPeerIdError
from p2pstack.host import Host
from p2pstack.identity import PeerId
from p2pstack.multiaddrs import parse_multiaddr, split_peer_id
from p2pstack.roots.cli import _dht_ops as ops
from p2pstack.roots.cli._client import client_config
from p2pstack.roots.cli._common import Output, UserError, load_identity, run_async
from p2pstack.roots.cli._errors import describe, describe_connect_failure
from p2pstack.roots.defaults import open_default_host
from protocols.kad import (
    InvalidCid,
    Kad,
    KadConfig,
    KadPeerAdded,
    KadPeerRemoved,
    RecordValidationError,
    cid_to_key,
)

__all__ = ["check_bootstrap_option", "join", "kad_config", "kad_event", "report_join", "run_dht"]

#: Where ``dht provide`` listens unless ``--listen`` is given: its provider record must carry an
#: address (js drops provider records without one).
PROVIDE_LISTEN = "/ip4/127.0.0.1/tcp/0"
#: Seconds of each DHT request of a client command (its whole lookup has ``--timeout``).
REQUEST_TIMEOUT = 10.0


def kad_config(args: argparse.Namespace, mode: str, timeout: float | None = None) -> KadConfig:
    """The DHT configuration of a command.

    Args:
        args: ``dht_protocol`` and ``dht_namespace`` (accepted without validation).
        mode: ``"server"`` or ``"client"``.
        timeout: the deadline of a whole lookup (None: the library's).

    Returns:
        The configuration.
    """
    config = KadConfig(
        mode="server" if mode == "server" else "client",
        protocol_id=args.dht_protocol,
        passthrough_namespaces=tuple(args.dht_namespace),
    )
    if timeout is None:
        return config
    return attrs.evolve(
        config, request_timeout=min(REQUEST_TIMEOUT, timeout), query_timeout=timeout
    )


def check_bootstrap_option(texts: Sequence[str]) -> list[Multiaddr]:
    """Parse ``--bootstrap`` values; each must name its peer.

    Args:
        texts: the values.

    Returns:
        The addresses.

    Raises:
        UserError: a value is not a multiaddr ending in ``/p2p/<peer-id>``.
    """
    addrs = []
    for text in texts:
        try:
            addr = parse_multiaddr(text)
        except ValueError as exc:
            raise UserError(f"--bootstrap: {exc}") from None
        if split_peer_id(addr)[1] is None:
            raise UserError(f"--bootstrap {text}: the address must end in /p2p/<peer-id>")
        addrs.append(addr)
    return addrs


async def join(host: Host, kad: Kad, addrs: Sequence[Multiaddr]) -> int:
    """Connect to every bootstrap peer at once, then bootstrap the DHT through those reached.

    Args:
        host: the host.
        kad: its DHT.
        addrs: the bootstrap peers (``/p2p/`` addresses).

    Returns:
        The number of peers in the routing table afterwards.

    Raises:
        UserError: no bootstrap peer could be reached (naming the first failure), or none of
            those reached serves the DHT (the routing table is still empty).
    """
    reached: list[Multiaddr] = []
    failures: list[BaseException] = []

    async def connect(addr: Multiaddr) -> None:
        try:
            await host.connect(addr)
        except NETWORK_ERRORS as exc:
            failures.append(exc)
        else:
            reached.append(addr)

    async with anyio.create_task_group() as tg:
        for addr in addrs:
            tg.start_soon(connect, addr)
    if not reached:
        first = failures[0]
        message = describe_connect_failure(first) or describe(first)
        raise UserError(message) from first
    size = await kad.bootstrap(reached)
    if size == 0:
        raise UserError(f"no DHT server ({kad.config.protocol_id}) among the bootstrap peers")
    return size


@asynccontextmanager
async def _client(
    args: argparse.Namespace, listen: Sequence[str]
) -> AsyncIterator[tuple[Host, Kad]]:
    """An ephemeral client-mode DHT node joined through ``--bootstrap`` within ``--timeout``."""
    addrs = check_bootstrap_option(args.bootstrap)
    async with open_default_host(
        identity=load_identity(args.key),
        listen=listen,
        config=client_config(args.timeout),
        kad=kad_config(args, "client", args.timeout),
    ) as host:
        kad = host.service(Kad)
        with anyio.fail_after(args.timeout):
            await join(host, kad, addrs)
        yield host, kad


def _cid(text: str) -> bytes:
    try:
        return cid_to_key(text)
    except InvalidCid as exc:
        raise UserError(f"invalid CID {text!r}: {exc}") from None


def _peer(text: str) -> PeerId:
    try:
        return PeerId.from_string(text)
    except (ValueError, InvalidPeerIdError) as exc:
        raise UserError(f"invalid peer ID {text!r}: {exc}") from None


def run_dht(args: argparse.Namespace) -> int:
    """``dht ACTION ... --bootstrap MA``: one DHT job; exit 0, or 1 with one line on stderr.

    Args:
        args: ``dht_command`` and its arguments (see ``_dht_args``).

    Returns:
        0 on success.

    Raises:
        UserError: the job failed (not found, stored nowhere, no bootstrap peer reachable, a
            record failing validation, a bad CID or peer ID).
    """
    return run_async(_run, args)


async def _run(args: argparse.Namespace) -> int:
    action: str = args.dht_command
    key = _cid(args.cid) if action in ("provide", "find-providers") else b""
    peer = _peer(args.peer_id) if action == "find-peer" else None
    listen = (args.listen or [PROVIDE_LISTEN]) if action == "provide" else []
    async with _client(args, listen) as (host, kad):
        me = host.peer_id
        sent = kad.statistics().outbound_requests
        out = ops.DhtOutput(
            args.json, lambda: f"{kad.statistics().outbound_requests - sent} requests sent"
        )
        try:
            with anyio.fail_after(args.timeout):
                if action == "put":
                    return await ops.put_value(kad, out, me, args.record_key, args.value)
                if action == "get":
                    return await ops.get_value(kad, out, args.record_key, args.quorum)
                if action == "provide":
                    return await ops.provide(kad, out, me, args.cid, key)
                if action == "find-providers":
                    return await ops.find_providers(kad, out, args.cid, key, args.limit)
                assert peer is not None
                return await ops.find_peer(kad, out, peer)
        except RecordValidationError as exc:
            hint = " (a namespace without a validator needs --dht-namespace NAME)"
            raise UserError(f"{exc}{hint if 'namespace' in str(exc) else ''}") from exc


def kad_event(event: object) -> tuple[str, str, dict[str, object]] | None:
    """A routing table event as ``p2pstack node`` prints it.

    Args:
        event: an event from ``host.subscribe()``.

    Returns:
        ``(name, text, fields)`` for ``KadPeerAdded`` (``dht_peer_added``) and
        ``KadPeerRemoved`` (``dht_peer_removed``), else None.
    """
    if isinstance(event, KadPeerAdded):
        peer = str(event.peer_id)
        return "dht_peer_added", f"DHT peer added {peer}", {"peer_id": peer}
    if isinstance(event, KadPeerRemoved):
        peer = str(event.peer_id)
        return "dht_peer_removed", f"DHT peer removed {peer}", {"peer_id": peer}
    return None


async def report_join(host: Host, bootstrap: Sequence[str], out: Output, timeout: float) -> None:
    """Join the DHT through ``bootstrap`` for ``p2pstack node`` and print the outcome:
    ``{"event": "dht_bootstrapped", "routing_table": N}`` or ``{"event":
    "dht_bootstrap_failed", "error": ...}`` (the node keeps serving either way).

    Args:
        host: the node's host (with the ``Kad`` service).
        bootstrap: the ``--bootstrap`` values.
        out: the output.
        timeout: seconds for the connections and the bootstrap lookup.
    """
    failures: tuple[type[BaseException], ...] = (UserError, *NETWORK_ERRORS)
    try:
        with anyio.fail_after(timeout):
            size = await join(host, host.service(Kad), check_bootstrap_option(bootstrap))
    except failures as exc:
        error = describe(exc)
        out.event("dht_bootstrap_failed", f"DHT bootstrap failed: {error}", error=error)
        return
    out.event(
        "dht_bootstrapped",
        f"DHT bootstrapped: {size} peer{'s' if size != 1 else ''} in the routing table",
        routing_table=size,
    )
