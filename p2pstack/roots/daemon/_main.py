"""``p2pstack daemon``: a p2pd-compatible daemon. Parses p2pd's flags, binds the control socket,
starts the node, prints ``Control socket:``, ``Peer ID:`` and ``Peer Addrs:`` as p2pd does, and
serves the control protocol until SIGINT or SIGTERM (then removes its unix socket).

Only the modules a run needs are imported: the DHT with ``-dht``, pubsub with ``-pubsub``, TLS
with ``-tls`` (start-up time matters: test suites start several daemons at once)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from p2pstack.roots.daemon._flags import USAGE, DaemonOptions, FlagError, HelpRequested, parse_flags

if TYPE_CHECKING:
    import anyio.abc
    from multiaddr import Multiaddr

    from p2pstack.host import Host, HostConfig
    from p2pstack.identity import Identity, PeerId
    from p2pstack.interfaces import (
        Muxer,
        RawConnection,
        SecureConnection,
        SecurityChannel,
        Service,
        Transport,
        UpgradedTransport,
    )

__all__ = ["main", "run"]


class StartError(Exception):
    """The daemon cannot start (bad key file, control socket in use...): one line, exit 1."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the daemon with p2pd's flags.

    Returns:
        0 after a signal stopped it, 1 when it cannot start, 2 for a bad command line.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        options = parse_flags(args)
    except HelpRequested:
        print(USAGE)
        return 0
    except FlagError as exc:
        print(f"p2pstack daemon: {exc}", file=sys.stderr)
        return 2
    try:
        import anyio

        return anyio.run(_run, options)
    except StartError as exc:
        print(f"p2pstack daemon: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run(args: object) -> int:
    """The ``p2pstack`` CLI runner: ``args.flags`` holds the daemon's arguments."""
    return main(list(getattr(args, "flags", [])))


def load_key(path: str | None) -> Identity:
    """The identity in a raw protobuf ``PrivateKey`` file (as p2pd's ``-id``), or a fresh one.

    Raises:
        StartError: the file cannot be read or holds no valid key.
    """
    from p2pstack.errors import IdentityError
    from p2pstack.identity import Identity

    if path is None:
        return Identity.generate()
    try:
        return Identity.load(path)
    except IdentityError as exc:
        raise StartError(f"-id {path}: {exc}") from None


class LazyTls:
    """TLS, imported at its first handshake: the X.509 machinery costs start-up time that a
    daemon whose peers pick Noise never needs (p2pd enables TLS by default)."""

    protocol_id = "/tls/1.0.0"  # transports.tls.PROTOCOL_ID (checked by a test)

    def __init__(self) -> None:
        self._tls: SecurityChannel | None = None

    def _channel(self) -> SecurityChannel:
        if self._tls is None:
            from transports.tls import Tls

            self._tls = Tls()
        return self._tls

    async def secure_outbound(
        self,
        conn: RawConnection,
        identity: Identity,
        *,
        remote_peer: PeerId | None,
        muxers: Sequence[str] = (),
    ) -> SecureConnection:
        """``Tls.secure_outbound``."""
        channel = self._channel()
        return await channel.secure_outbound(conn, identity, remote_peer=remote_peer, muxers=muxers)

    async def secure_inbound(
        self, conn: RawConnection, identity: Identity, *, muxers: Sequence[str] = ()
    ) -> SecureConnection:
        """``Tls.secure_inbound``."""
        return await self._channel().secure_inbound(conn, identity, muxers=muxers)


def _security(names: Sequence[str]) -> list[SecurityChannel]:
    out: list[SecurityChannel] = []
    for name in names:
        if name == "noise":
            from transports.noise import Noise

            out.append(Noise())
        elif name == "tls":
            out.append(LazyTls())
        else:
            from transports.plaintext import Plaintext

            out.append(Plaintext())
    return out


def _muxers(names: Sequence[str]) -> list[Muxer]:
    out: list[Muxer] = []
    for name in names:
        if name == "yamux":
            from transports.yamux import Yamux

            out.append(Yamux())
        else:
            from transports.mplex import Mplex

            out.append(Mplex())
    return out


def _services(options: DaemonOptions) -> list[Service]:
    from protocols.identify import Identify
    from protocols.ping import Ping

    identify = Identify()
    services: list[Service] = [identify, Ping()]
    if options.dht is not None:
        from protocols.kad import Kad, KadConfig

        config = KadConfig(mode="server" if options.dht == "server" else "client")
        services.append(Kad(config, before_request=identify.identified_by))
    if options.pubsub is not None:
        from protocols.pubsub import Pubsub

        services.append(Pubsub(options.pubsub))
    return services


async def _bind_control(
    addr: str,
) -> tuple[anyio.abc.Listener[anyio.abc.SocketStream], Multiaddr, str | None]:
    import anyio
    from multiaddr import Multiaddr

    from p2pstack.roots.daemon._streams import component

    try:
        ma = Multiaddr(addr)
    except Exception as exc:  # the multiaddr package raises several unrelated types
        raise StartError(f"-listen {addr}: not a multiaddr ({exc})") from None
    kinds = [p.name for p in ma.protocols()]
    try:
        if kinds == ["unix"]:
            path = component(ma, "unix")
            return await anyio.create_unix_listener(path), ma, path
        if len(kinds) == 2 and kinds[0] in ("ip4", "ip6") and kinds[1] == "tcp":
            listener = await anyio.create_tcp_listener(
                local_host=component(ma, kinds[0]),
                local_port=int(component(ma, "tcp")),
            )
            port = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
            return (
                listener,
                Multiaddr(f"/{kinds[0]}/{ma.value_for_protocol(kinds[0])}/tcp/{port}"),
                None,
            )
    except OSError as exc:
        raise StartError(f"cannot listen on {addr}: {exc.strerror or exc}") from None
    raise StartError(f"-listen {addr}: use /unix/PATH or /ip4/127.0.0.1/tcp/PORT")


def relay_parts(
    options: DaemonOptions,
) -> tuple[list[Transport | UpgradedTransport], list[Service]]:
    """Circuit relay v2: the transport that dials ``/p2p-circuit`` addresses and accepts
    circuits (p2pd always has it; its CONNECT through a relay without a reservation fails
    naming ``NO_RESERVATION``) and, with ``-relay`` (p2pd's default), the hop service."""
    from protocols.relay import CircuitRelayTransport

    transports: list[Transport | UpgradedTransport] = [CircuitRelayTransport()]
    if not options.relay:
        return transports, []
    from protocols.relay import RelayService

    return transports, [RelayService()]


def _host_config(options: DaemonOptions) -> HostConfig | None:
    """``-connManager``'s watermarks and grace period (without it, the library's defaults)."""
    if options.conn_manager is None:
        return None
    from p2pstack.connmgr import ConnectionManagerConfig
    from p2pstack.host import HostConfig

    low, high, grace = options.conn_manager
    manager = ConnectionManagerConfig(low_water=low, high_water=high, grace_period=grace)
    return HostConfig(connection_manager=manager)


def _transports(host_addrs: Sequence[str]) -> list[Transport | UpgradedTransport]:
    from transports.tcp import TcpTransport

    transports: list[Transport | UpgradedTransport] = [TcpTransport()]
    if any("/quic" in a for a in host_addrs):
        from transports.quic import QuicTransport

        transports.insert(0, QuicTransport())
    return transports


async def _run(options: DaemonOptions) -> int:
    import contextlib

    import anyio

    from p2pstack.builder import open_host
    from p2pstack.errors import P2PError

    identity = load_key(options.key_file)
    relay = relay_parts(options)
    # Circuits from any relay: p2pd's clients reserve by hand (a hop RESERVE on a stream of
    # their own), then expect the relay to reach them.
    from protocols.relay import ANY_RELAY

    listener, control_addr, socket_path = await _bind_control(options.listen)
    try:
        async with contextlib.AsyncExitStack() as stack:
            try:
                host = await stack.enter_async_context(
                    open_host(
                        identity=identity,
                        transports=[*_transports(options.host_addrs), *relay[0]],
                        security=_security(options.security),
                        muxers=_muxers(options.muxers),
                        services=[*_services(options), *relay[1]],
                        listen=[*options.host_addrs, ANY_RELAY],
                        config=_host_config(options),
                    )
                )
            except (OSError, P2PError, ValueError, BaseExceptionGroup) as exc:
                leaf = _leaf(exc)
                if not isinstance(leaf, OSError | P2PError | ValueError):
                    raise
                raise StartError(_one_line(leaf)) from None
            signals = stack.enter_context(anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM))
            await _serve(options, host, listener, control_addr, signals)
    finally:
        with anyio.CancelScope(shield=True):
            await listener.aclose()
        if socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(socket_path)
    return 0


def _leaf(exc: BaseException) -> BaseException:
    """The one error inside nested single-error groups (the host's task groups wrap them)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


async def _serve(
    options: DaemonOptions,
    host: Host,
    listener: anyio.abc.Listener[anyio.abc.SocketStream],
    control_addr: Multiaddr,
    signals: AsyncIterator[int],
) -> None:
    import anyio

    from p2pstack.roots.daemon._server import DaemonServer

    server = DaemonServer(host)
    if options.dht is not None:
        from protocols.kad import Kad

        server.kad = host.service(Kad)
    if options.pubsub is not None:
        from protocols.pubsub import Pubsub

        server.pubsub = host.service(Pubsub)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, listener)
        if not options.quiet:
            _announce(control_addr, host)
        if options.bootstrap:
            tg.start_soon(_bootstrap, host, options.bootstrap)
        async for _ in signals:
            break
        tg.cancel_scope.cancel()


def _failures() -> tuple[type[BaseException], ...]:
    from p2pstack.errors import NETWORK_ERRORS

    return (*NETWORK_ERRORS, TimeoutError, ValueError)


def _announce(control: Multiaddr, host: Host) -> None:
    lines = [f"Control socket: {control}", f"Peer ID: {host.peer_id}", "Peer Addrs:"]
    lines.extend(str(a) for a in host.listen_addrs)
    print("\n".join(lines), flush=True)


async def _bootstrap(host: Host, peers: Sequence[str]) -> None:
    import anyio

    for peer in peers:
        try:
            with anyio.fail_after(30):
                await host.connect(peer)
        except _failures():
            pass  # p2pd logs and carries on: one unreachable bootstrap peer is not fatal
