"""py-libp2p 0.8.1 interop peer: TCP + Noise or TLS + yamux/mplex (or QUIC-v1, when an address
asks for it) + identify + ping, echo and perf; with --dht also a Kademlia DHT node driven by
commands on stdin (peer_kad.py); with --rendezvous a rendezvous point or client
(peer_rendezvous.py).

Perf follows https://github.com/libp2p/specs/blob/master/perf/perf.md. The command line and the
JSON-lines output contract are described in ../README.md. Runs in its own venv
(.interop/py-venv, made by ../setup.sh), never in the project's.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import signal
import stat
import sys
import time
import traceback
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import multiaddr
import trio
from cryptography import x509
from cryptography.x509.oid import NameOID
from libp2p import new_host
from libp2p.abc import INetConn, INetStream, INetwork, INotifee
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.io.utils import read_exactly
from libp2p.network.config import ConnectionConfig
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.perf import PerfService
from libp2p.rcmgr import Direction
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.security.tls.transport import PROTOCOL_ID as TLS_PROTOCOL_ID
from libp2p.security.tls.transport import IdentityConfig, TLSTransport
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID, Mplex
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.transport.quic.config import QUICTransportConfig
from peer_actions import Ctx, run_actions
from peer_common import (
    ECHO_PROTOCOL,
    PING_PROTOCOL,
    Action,
    Config,
    PeerError,
    emit,
    is_quic,
    muxer_of,
    read_chunk,
)
from peer_kad import open_dht, run_command
from peer_pubsub import open_pubsub, run_pubsub_command
from peer_rendezvous import open_rendezvous, run_rendezvous_command

SHUTDOWN_GRACE = 5.0  # seconds allowed for host shutdown
QUIC_TAIL_WAIT = 0.05  # seconds a QUIC end of stream waits for late data (late_tail_reads)
MUXERS: dict[str, tuple[TProtocol, Any]] = {
    "yamux": (TProtocol(YAMUX_PROTOCOL_ID), Yamux),
    "mplex": (TProtocol(MPLEX_PROTOCOL_ID), Mplex),
}


# ------------------------------------------------------------------ command line


ARITY = {"ping": 1, "identify": 0, "echo": 1, "streams": 2, "perf": 2, "idle": 1}
# Benchmark actions (run here, not in peer_actions): each makes fresh connections to the target.
BENCH_ARITY = {"dials": 1, "rate": 1}
ARITY.update(BENCH_ARITY)


def parse_action(text: str) -> Action:
    name, *rest = text.split(":")
    try:
        nums = [int(x) for x in rest]
    except ValueError:
        raise PeerError(f"bad number in action {text}") from None
    if ARITY.get(name) != len(nums) or any(n < 0 for n in nums):
        raise PeerError(f"bad action {text}")
    return Action(name, nums)


def parse_command_line(argv: list[str]) -> Config:
    p = argparse.ArgumentParser(description="py-libp2p interop peer")
    p.add_argument("--listen")
    p.add_argument("--muxer", action="append", choices=sorted(MUXERS))
    p.add_argument("--security", action="append", choices=["noise", "tls"])
    p.add_argument("--dial")
    p.add_argument("--actions", default="")
    p.add_argument("--seed")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--dht", choices=["server", "client"])
    p.add_argument("--dht-namespace", action="append", default=[])
    p.add_argument("--bootstrap", action="append", default=[])
    p.add_argument("--pubsub", choices=["gossipsub", "floodsub"])
    p.add_argument("--rendezvous", choices=["point", "client"])
    p.add_argument("--mdns", action="store_true")
    a = p.parse_args(argv)
    if a.rendezvous is not None and (a.listen is None or a.dht or a.pubsub):
        raise PeerError("--rendezvous needs --listen and mixes with neither --dht nor --pubsub")
    if (a.dht is not None or a.pubsub is not None) and a.listen is None:
        raise PeerError("--dht and --pubsub need --listen")
    if a.dht is not None and a.pubsub is not None:
        raise PeerError("--pubsub and --dht do not mix")
    actions = [parse_action(x) for x in a.actions.split(",") if x]
    if actions and a.dial is None:
        raise PeerError("--actions needs --dial")
    if a.listen is None and a.dial is None:
        raise PeerError("need --listen and/or --dial")
    muxers = a.muxer or ["yamux", "mplex"]
    return Config(
        a.listen,
        a.dial,
        muxers,
        actions,
        a.seed,
        a.timeout,
        dht=a.dht,
        dht_namespaces=a.dht_namespace,
        bootstrap=a.bootstrap,
        pubsub=a.pubsub,
        security=a.security or ["noise"],
        rendezvous=a.rendezvous,
        mdns=a.mdns,
    )


# ------------------------------------------------------------------ servers


def guarded(
    protocol: str, timeout: float, fn: Callable[[INetStream], Awaitable[None]]
) -> Callable[[INetStream], Awaitable[None]]:
    async def handler(stream: INetStream) -> None:
        peer = str(stream.muxed_conn.peer_id)
        try:
            with trio.fail_after(timeout):
                await fn(stream)
        except Exception as exc:  # a bad remote must not take the peer down
            emit("handler_error", protocol=protocol, peer_id=peer, message=repr(exc))
            try:
                await stream.reset()
            except Exception:
                pass

    return handler


async def serve_echo(stream: INetStream) -> None:
    if is_quic(stream.muxed_conn):
        total = await echo_decoupled(stream)
    else:
        total = 0
        while (data := await read_chunk(stream)) is not None:
            total += len(data)
            await stream.write(data)
    await stream.close()
    emit(
        "served",
        protocol=ECHO_PROTOCOL,
        peer_id=str(stream.muxed_conn.peer_id),
        bytes_in=total,
        bytes_out=total,
    )


async def echo_decoupled(stream: INetStream) -> int:
    """Echo with reading and writing in separate tasks; returns the bytes echoed.

    py-libp2p's QUIC streams drop received bytes ("receive buffer overflow") when more than
    2 MiB wait unread: its flow-control credit does not wait for the application, so a server
    that stops reading while its write is blocked loses data. Reading into our own queue
    keeps the stream's buffer drained; the queue is as large as the client's unanswered data.
    """
    send, receive = trio.open_memory_channel[bytes](math.inf)
    total = 0

    async def pump_in() -> None:
        nonlocal total
        async with send:
            while (data := await read_chunk(stream)) is not None:
                total += len(data)
                send.send_nowait(data)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump_in)
        async with receive:
            async for data in receive:
                await stream.write(data)
    return total


class InboundReporter(INotifee):
    """Reports each inbound connection once its muxer is known, and when it is gone."""

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        if getattr(conn, "direction", None) == Direction.INBOUND:
            emit("inbound", peer_id=str(conn.muxed_conn.peer_id), muxer=muxer_of(conn))

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        if getattr(conn, "direction", None) == Direction.INBOUND:
            emit("disconnected", peer_id=str(conn.muxed_conn.peer_id))

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        pass

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        pass


# ------------------------------------------------------------------ host


def make_tls(key_pair: Any) -> TLSTransport:
    """py-libp2p's TLS transport with a certificate js-libp2p accepts.

    py-libp2p's default template adds BasicConstraints and KeyUsage before the libp2p extension,
    and js-libp2p (@libp2p/tls 3.1.10 verifyPeerCertificate) only looks at the *first* extension,
    so it refuses py's certificate ("did not include the libp2p public key extension"). The same
    template without those two extensions leaves the libp2p extension first (and only).
    """
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "libp2p")])
    template = (
        x509.CertificateBuilder()
        .serial_number(int.from_bytes(os.urandom(8), "big") | 1)
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=365))
        .subject_name(name)
        .issuer_name(name)
    )
    return TLSTransport(key_pair, identity_config=IdentityConfig(cert_template=template))


def make_host(cfg: Config) -> Any:
    if cfg.seed is None:
        key_pair = create_new_key_pair()
    else:
        # Same derivation as the js peer: Ed25519 seed = SHA-256 of the decimal seed string.
        key_pair = create_new_key_pair(hashlib.sha256(cfg.seed.encode()).digest())
    security: dict[TProtocol, Any] = {}
    for name in cfg.security:
        if name == "noise":
            noise_key = create_new_x25519_key_pair().private_key
            noise = NoiseTransport(key_pair, noise_privkey=noise_key)
            security[TProtocol(NOISE_PROTOCOL_ID)] = noise
        else:
            # No muxers in ALPN: py-libp2p's upgrader ignores the ALPN result and always runs
            # multistream-select for the muxer, so it must offer only "libp2p" there.
            security[TProtocol(TLS_PROTOCOL_ID)] = make_tls(key_pair)
    muxers = OrderedDict(MUXERS[m] for m in cfg.muxers)
    # One connection per peer: also skips a fixed 250 ms happy-eyeballs wait per dial.
    connection: ConnectionConfig = ConnectionConfig(max_connections_per_peer=1)
    quic = uses_quic(cfg)
    if quic:
        keep_reading_after_stop_sending()
        late_tail_reads()
        # QUIC-only host (py-libp2p builds its transports from the addresses, or from
        # enable_quic for a dial-only host); the QUIC config carries the connection limits too.
        connection = QUICTransportConfig(max_connections_per_peer=1)
    return new_host(
        key_pair=key_pair,
        sec_opt=security,
        muxer_opt=muxers,
        listen_addrs=[multiaddr.Multiaddr(cfg.listen)] if cfg.listen else None,
        enable_quic=quic,
        connection_config=connection,
        enable_mDNS=cfg.mdns,
    )


def keep_reading_after_stop_sending() -> None:
    """Make py-libp2p's QUIC streams stay readable after the peer's STOP_SENDING.

    py-libp2p 0.8.1 marks an outbound stream closed when STOP_SENDING arrives, so a read that
    starts before the answer already on the wire is appended fails ("Stream N is closed"). A
    peer that closes a stream after answering (p2pstack's identify, as go's and js's close
    does) sends STOP_SENDING right after its reply. STOP_SENDING only concerns our sending side
    (RFC 9000 section 3.5): answer it with RESET_STREAM and leave the read side alone.
    """
    from libp2p.transport.quic.stream import QUICStream, StreamState

    async def handle_stop_sending(self: Any, error_code: int) -> None:
        self._write_closed = True
        self._backpressure_event.set()
        async with self._state_lock:
            self._state = StreamState.CLOSED if self._read_closed else StreamState.WRITE_CLOSED
        try:
            self._connection._quic.reset_stream(int(self.stream_id), error_code)
            await self._connection._transmit()
        except Exception:  # the stream or connection is already gone
            pass

    QUICStream.handle_stop_sending = handle_stop_sending  # type: ignore[method-assign]  # the patch


def late_tail_reads() -> None:
    """Make py-libp2p's QUIC ``read()`` look again before it reports the end of a stream.

    py-libp2p's QUIC now and then reports the end of a stream before the stream's last data is
    in its buffer (two tasks hand it the events of one aioquic connection, its listener's and
    the connection's): an echo lost its tail, its own identify request failed the dial. At an
    end of stream (or "closed") that no reset caused, wait a moment and read what came late.
    """
    from libp2p.transport.quic.exceptions import QUICStreamClosedError
    from libp2p.transport.quic.stream import QUICStream

    original = QUICStream.read

    async def read(self: Any, n: int | None = None) -> bytes:
        try:
            return await original(self, n)
        except (EOFError, QUICStreamClosedError):
            if self.is_reset():
                raise
            await trio.sleep(QUIC_TAIL_WAIT)
            if not self._receive_buffer:
                raise
            return await original(self, n)  # the buffer is read before any state check

    QUICStream.read = read  # type: ignore[method-assign]  # the patch


def uses_quic(cfg: Config) -> bool:
    """Whether any address of the run is QUIC-v1: then the host runs py-libp2p's QUIC transport."""
    return any("/quic-v1" in a for a in [cfg.listen or "", cfg.dial or "", *cfg.bootstrap])


async def wait_for_shutdown(on_line: Callable[[str], Awaitable[None]] | None = None) -> None:
    """Return on SIGTERM/SIGINT, or on stdin EOF when stdin is a pipe, socket or tty; with
    ``on_line``, each non-empty stdin line is handed to it, in order, one at a time."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def on_signal() -> None:
                async for _ in signals:
                    nursery.cancel_scope.cancel()

            async def on_eof() -> None:
                stdin = trio.lowlevel.FdStream(os.dup(0))
                pending = b""
                while data := await stdin.receive_some(4096):
                    *lines, pending = (pending + data).split(b"\n")
                    for line in lines:
                        if on_line is not None and line.strip():
                            await on_line(line.decode())
                nursery.cancel_scope.cancel()

            nursery.start_soon(on_signal)
            mode = os.fstat(0).st_mode
            if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(0):
                nursery.start_soon(on_eof)


async def serve(host: Any, cfg: Config) -> None:
    host.set_stream_handler(ECHO_PROTOCOL, guarded(ECHO_PROTOCOL, cfg.timeout, serve_echo))
    await PerfService(host).start()  # py-libp2p ships a perf server; use it as is
    host.get_network().register_notifee(InboundReporter())
    if cfg.listen:
        emit("listening", peer_id=str(host.get_id()), addrs=[str(a) for a in host.get_addrs()])
    if cfg.dial:
        info = info_from_p2p_addr(multiaddr.Multiaddr(cfg.dial))
        start = time.perf_counter()
        with trio.fail_after(cfg.timeout):
            await host.connect(info)
        conn = host.get_network().get_connections(info.peer_id)[0]
        emit(
            "connected",
            peer_id=str(info.peer_id),
            muxer=muxer_of(conn),
            dial_ms=(time.perf_counter() - start) * 1000,
        )
        for action in cfg.actions:
            if action.name in BENCH_ARITY:
                await bench_action(host, info, action, cfg.timeout)
            else:
                one = Config(cfg.listen, cfg.dial, cfg.muxers, [action], cfg.seed, cfg.timeout)
                await run_actions(Ctx(host, info.peer_id, conn, one))
        emit("done")
    if cfg.dht is not None:
        async with open_dht(host, cfg) as dht:
            emit("ready")
            await wait_for_shutdown(lambda line: run_command(dht, cfg, line))
    elif cfg.pubsub is not None:
        async with open_pubsub(host, cfg) as node:
            emit("ready")
            await wait_for_shutdown(lambda line: run_pubsub_command(node, line))
    elif cfg.rendezvous is not None:
        async with open_rendezvous(host, cfg) as rv:
            emit("ready")
            await wait_for_shutdown(lambda line: run_rendezvous_command(rv, line))
    elif cfg.listen:
        await wait_for_shutdown()


def report_discoveries() -> None:
    """Print each peer py-libp2p's discovery finds (its mDNS listener calls from zeroconf's
    thread; one print per line is atomic enough for the JSON-lines contract)."""
    from libp2p.discovery.events.peerDiscovery import peerDiscovery

    def found(info: Any) -> None:
        addrs = [str(a) for a in info.addrs]
        emit("peer:discovery", peer_id=str(info.peer_id), addrs=addrs, source="mdns")

    peerDiscovery.register_peer_discovered_handler(found)


async def fresh_dial(host: Any, info: Any, ping: bool, timeout: float) -> float:
    """Close every connection to the target, dial a new one (TCP + Noise + muxer), optionally
    ping once over it; returns the seconds from dial start to the end of the ping/upgrade."""
    with trio.fail_after(timeout):
        await host.disconnect(info.peer_id)
        start = time.perf_counter()
        await host.connect(info)
        if ping:
            stream = await host.new_stream(info.peer_id, [PING_PROTOCOL])
            payload = os.urandom(32)
            await stream.write(payload)
            if await read_exactly(stream, 32) != payload:
                raise PeerError("ping: wrong payload back")
        elapsed = time.perf_counter() - start
        if ping:
            await stream.close()
    return elapsed


async def bench_action(host: Any, info: Any, action: Action, timeout: float) -> None:
    """dials:N = N x (fresh dial + upgrade + first ping), each latency reported;
    rate:N = N sequential fresh dials + upgrades, reported as handshakes per second."""
    (count,) = action.args
    if action.name == "dials":
        ms = [await fresh_dial(host, info, True, timeout) * 1000 for _ in range(count)]
        emit("dials", count=count, ms=ms)
        return
    start = time.perf_counter()
    for _ in range(count):
        await fresh_dial(host, info, False, timeout)
    seconds = time.perf_counter() - start
    emit("rate", count=count, seconds=seconds, per_second=count / seconds if seconds else None)


async def main(cfg: Config) -> None:
    host = make_host(cfg)
    listen = [multiaddr.Multiaddr(cfg.listen)] if cfg.listen else []
    failure: Exception | None = None
    if cfg.mdns:  # before host.run starts py-libp2p's mDNS: its first finds come quickly
        report_discoveries()
    # Shutting the host down is bounded too: cancelled SHUTDOWN_GRACE seconds after the work ends.
    with trio.CancelScope() as shutdown:
        async with host.run(listen_addrs=listen):
            try:
                await serve(host, cfg)
            except Exception as exc:  # re-raised below, after the bounded shutdown
                failure = exc
            finally:
                shutdown.deadline = trio.current_time() + SHUTDOWN_GRACE
    if failure is not None:
        raise failure


def leaves(exc: BaseException) -> list[BaseException]:
    """The real errors inside (nested) exception groups."""
    inner = getattr(exc, "exceptions", None)  # BaseExceptionGroup (a backport on 3.10)
    if isinstance(inner, (list, tuple)):
        return [leaf for sub in inner for leaf in leaves(sub)]
    return [exc]


def run() -> int:
    try:
        cfg = parse_command_line(sys.argv[1:])
        trio.run(main, cfg)
    except BaseException as exc:  # every failure becomes one error event and exit 1
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            return 0
        traceback.print_exc()
        emit("error", message="; ".join(repr(e) for e in leaves(exc)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run())
