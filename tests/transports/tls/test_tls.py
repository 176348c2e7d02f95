"""The ``/tls/1.0.0`` channel: ALPN, the sans-IO session with bytes, handshake failures with
typed errors, and hosts over TCP with yamux and mplex."""

from __future__ import annotations

import contextlib
import gc
import os
import struct
import time
import weakref
from collections.abc import AsyncIterator, Sequence

import anyio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st
from OpenSSL import SSL

from p2pstack.builder import open_host
from p2pstack.errors import (
    CertificateError,
    DialError,
    HandshakeError,
    PeerIdMismatch,
    RemoteProtocolError,
)
from p2pstack.host import Host
from p2pstack.identity import CertifiedKey, Identity, make_certificate
from p2pstack.interfaces import Muxer, RawConnection
from p2pstack.streams import memory_connection_pair
from protocols.ping import Ping
from tests.p2pstack.hosts import ECHO, echo_handler, echo_once
from transports.mplex import Mplex
from transports.tcp import TcpTransport
from transports.tls import (
    PROTOCOL_ID,
    Tls,
    TlsSecureConnection,
    TlsSession,
    alpn_offer,
    early_muxer_of,
    make_context,
    select_alpn,
)
from transports.yamux import Yamux

YAMUX = "/yamux/1.0.0"
MPLEX = "/mplex/6.7.0"
A, B, C = Identity.generate(), Identity.generate(), Identity.generate()


def test_alpn_offer_lists_muxers_then_libp2p() -> None:
    assert alpn_offer([YAMUX, MPLEX]) == [YAMUX.encode(), MPLEX.encode(), b"libp2p"]
    assert alpn_offer([]) == [b"libp2p"]
    assert alpn_offer(["libp2p", "", "x" * 300, YAMUX]) == [YAMUX.encode(), b"libp2p"]


def test_select_alpn_follows_the_clients_preference() -> None:
    offered = [MPLEX.encode(), YAMUX.encode(), b"libp2p"]
    assert select_alpn(offered, [YAMUX, MPLEX]) == MPLEX.encode()
    assert select_alpn(offered, [YAMUX]) == YAMUX.encode()
    assert select_alpn(offered, []) == b"libp2p"
    assert select_alpn([b"h2", b"http/1.1"], [YAMUX]) is None
    assert early_muxer_of(b"libp2p") is None
    assert early_muxer_of(YAMUX.encode()) == YAMUX


def _sessions(
    client_muxers: Sequence[str] = (YAMUX, MPLEX),
    server_muxers: Sequence[str] = (YAMUX, MPLEX),
) -> tuple[TlsSession, TlsSession]:
    now = time.time()
    client = TlsSession(
        make_context(make_certificate(A.private_key), server=False),
        client=True,
        muxers=client_muxers,
        remote_peer=B.peer_id,
        now=now,
    )
    server = TlsSession(
        make_context(make_certificate(B.private_key), server=True),
        client=False,
        muxers=server_muxers,
        now=now,
    )
    return client, server


def _client_hello_extensions(record: bytes) -> dict[int, bytes]:
    """The extensions of a ClientHello record (RFC 8446 section 4.1.2)."""
    assert record[0] == 0x16  # handshake record
    body = record[5:]
    assert body[0] == 0x01  # ClientHello
    pos = 4 + 2 + 32  # handshake header, legacy_version, random
    pos += 1 + body[pos]  # legacy_session_id
    pos += 2 + struct.unpack_from(">H", body, pos)[0]  # cipher_suites
    pos += 1 + body[pos]  # legacy_compression_methods
    end = pos + 2 + struct.unpack_from(">H", body, pos)[0]
    pos += 2
    extensions = {}
    while pos < end:
        kind, length = struct.unpack_from(">HH", body, pos)
        extensions[kind] = body[pos + 4 : pos + 4 + length]
        pos += 4 + length
    return extensions


def _pump(client: TlsSession, server: TlsSession) -> None:
    for _ in range(10):
        if client.step() and server.step():
            break
        server.receive_data(client.data_to_send())
        server.step()
        client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())


def test_client_hello_bytes_tls13_only_no_sni_alpn() -> None:
    client, _ = _sessions()
    assert not client.step()
    extensions = _client_hello_extensions(client.data_to_send())
    assert 0x0000 not in extensions  # server_name: "MUST NOT send any value" in SNI
    assert extensions[0x002B] == b"\x02\x03\x04"  # supported_versions: TLS 1.3 only
    alpn = extensions[0x0010]
    assert alpn == b"\x00\x21\x0c/yamux/1.0.0\x0c/mplex/6.7.0\x06libp2p"


def test_sans_io_handshake_and_data() -> None:
    client, server = _sessions(server_muxers=(MPLEX,))
    _pump(client, server)
    assert client.handshake_complete and server.handshake_complete
    assert client.early_muxer == server.early_muxer == MPLEX
    assert client.remote_public_key == B.public_key
    assert server.remote_public_key == A.public_key
    client.send(b"hello")
    record = client.data_to_send()
    assert record[:3] == b"\x17\x03\x03"  # application_data, legacy version 1.2
    assert b"hello" not in record
    assert server.read(100) == b""  # nothing received yet
    server.receive_data(record)
    assert server.read(100) == b"hello"
    server.receive_data(record[:-1] + bytes([record[-1] ^ 1]))
    with pytest.raises(RemoteProtocolError, match="TLS record error"):
        server.read(100)
    client.close()
    assert client.data_to_send()


def test_sans_io_libp2p_alpn_means_no_early_muxer() -> None:
    client, server = _sessions(client_muxers=(YAMUX,), server_muxers=(MPLEX,))
    _pump(client, server)
    assert client.early_muxer is None and server.early_muxer is None


@contextlib.asynccontextmanager
async def tls_pair(
    *, client_muxers: Sequence[str] = (), server_muxers: Sequence[str] = ()
) -> AsyncIterator[tuple[TlsSecureConnection, TlsSecureConnection]]:
    ca, cb = memory_connection_pair()
    out: dict[str, TlsSecureConnection] = {}

    async def inbound() -> None:
        out["b"] = await Tls().secure_inbound(cb, B, muxers=server_muxers)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(inbound)
            out["a"] = await Tls().secure_outbound(
                ca, A, remote_peer=B.peer_id, muxers=client_muxers
            )
    try:
        yield out["a"], out["b"]
    finally:
        await out["a"].aclose()
        await out["b"].aclose()


@pytest.mark.anyio
async def test_alpn_muxer_inlining_over_a_pipe() -> None:
    async with tls_pair(client_muxers=(YAMUX, MPLEX), server_muxers=(MPLEX, YAMUX)) as (a, b):
        assert a.early_muxer == b.early_muxer == YAMUX
        assert a.security_protocol == PROTOCOL_ID
        assert a.remote_peer == B.peer_id and b.remote_peer == A.peer_id
    async with tls_pair(client_muxers=(YAMUX,)) as (a, b):
        assert a.early_muxer is None and b.early_muxer is None


async def _outcome(work: object) -> object:
    try:
        return await work  # type: ignore[misc]  # any awaitable
    except Exception as exc:
        return exc


async def _both(
    client: object, server_conn: RawConnection, *, server: Tls | None = None
) -> tuple[object, object]:
    results: dict[str, object] = {}

    async def run_server() -> None:
        results["server"] = await _outcome((server or Tls()).secure_inbound(server_conn, B))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_server)
            results["client"] = await _outcome(client)
    return results["client"], results["server"]


@pytest.mark.anyio
async def test_wrong_expected_peer_aborts_both_sides() -> None:
    ca, cb = memory_connection_pair()
    client, server = await _both(Tls().secure_outbound(ca, A, remote_peer=C.peer_id), cb)
    assert isinstance(client, PeerIdMismatch)
    assert client.expected == str(C.peer_id) and client.actual == str(B.peer_id)
    assert isinstance(server, HandshakeError)  # the client's alert, or the closed pipe


@pytest.mark.anyio
async def test_expired_server_certificate() -> None:
    stale = Tls(certificate_lifetime=60.0, clock=lambda: time.time() - 3600)
    ca, cb = memory_connection_pair()
    client, _ = await _both(Tls().secure_outbound(ca, A, remote_peer=B.peer_id), cb, server=stale)
    assert isinstance(client, CertificateError)
    assert "expired" in str(client)


async def _foreign_client(
    conn: RawConnection,
    *,
    certified: CertifiedKey | None,
    alpn: Sequence[bytes] = (b"libp2p",),
    max_version: int = SSL.TLS1_3_VERSION,
    extra_chain: Sequence[x509.Certificate] = (),
) -> SSL.Connection:
    """A TLS client that is not ours: optionally without a certificate, or of an older TLS
    version, or sending more certificates than its own."""
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_max_proto_version(max_version)
    context.set_verify(SSL.VERIFY_NONE)
    if certified is not None:
        context.use_certificate(certified.certificate)
        context.use_privatekey(certified.private_key)
    for extra in extra_chain:
        context.add_extra_chain_cert(extra)
    ssl = SSL.Connection(context)
    ssl.set_alpn_protos(list(alpn))
    ssl.set_connect_state()
    while True:
        try:
            ssl.do_handshake()
            done = True
        except SSL.WantReadError:
            done = False
        with contextlib.suppress(SSL.WantReadError):
            await conn.send(ssl.bio_read(1 << 16))
        if done:
            return ssl
        ssl.bio_write(await conn.receive())


@pytest.mark.anyio
async def test_client_without_certificate_is_rejected() -> None:
    ca, cb = memory_connection_pair()
    _, server = await _both(_foreign_client(ca, certified=None), cb)
    assert isinstance(server, HandshakeError)
    assert "certificate" in str(server)


def _reissued(
    host: Identity,
    *,
    key: ec.EllipticCurvePrivateKey | None = None,
    libp2p_critical: bool = False,
    extra: x509.ExtensionType | None = None,
) -> CertifiedKey:
    """``host``'s certificate issued again: over another TLS ``key`` (keeping the extension, so
    forged), with the libp2p extension marked critical (as rust-libp2p does), or with an
    ``extra`` critical extension."""
    genuine = make_certificate(host.private_key)
    if key is None:
        assert isinstance(genuine.private_key, ec.EllipticCurvePrivateKey)
        key = genuine.private_key
    original = genuine.certificate
    builder = (
        x509.CertificateBuilder()
        .subject_name(original.subject)
        .issuer_name(original.issuer)
        .public_key(key.public_key())
        .serial_number(original.serial_number)
        .not_valid_before(original.not_valid_before_utc)
        .not_valid_after(original.not_valid_after_utc)
    )
    for extension in original.extensions:
        builder = builder.add_extension(extension.value, critical=libp2p_critical)
    if extra is not None:
        builder = builder.add_extension(extra, critical=True)
    return CertifiedKey(certificate=builder.sign(key, hashes.SHA256()), private_key=key)


@pytest.mark.anyio
async def test_client_with_anothers_certificate_key_is_rejected() -> None:
    other = make_certificate(C.private_key).private_key
    assert isinstance(other, ec.EllipticCurvePrivateKey)
    forged = _reissued(A, key=other)
    ca, cb = memory_connection_pair()
    _, server = await _both(_foreign_client(ca, certified=forged), cb)
    assert isinstance(server, CertificateError)
    assert "signature in libp2p extension is invalid" in str(server)


@pytest.mark.anyio
async def test_client_certificate_with_unknown_critical_extension_is_rejected() -> None:
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    ca, cb = memory_connection_pair()
    _, server = await _both(_foreign_client(ca, certified=_reissued(A, extra=unknown)), cb)
    assert isinstance(server, CertificateError)
    assert "unknown critical extension" in str(server)


@pytest.mark.anyio
async def test_client_certificate_with_critical_libp2p_extension_is_accepted() -> None:
    # rust-libp2p marks the extension critical; OpenSSL's own complaint about it is overruled.
    ca, cb = memory_connection_pair()
    certified = _reissued(A, libp2p_critical=True)
    _, server = await _both(_foreign_client(ca, certified=certified), cb)
    assert isinstance(server, TlsSecureConnection), server
    assert server.remote_peer == A.peer_id
    await server.aclose()


@pytest.mark.anyio
async def test_no_common_alpn_protocol_is_rejected() -> None:
    ca, cb = memory_connection_pair()
    certified = make_certificate(A.private_key)
    client, server = await _both(_foreign_client(ca, certified=certified, alpn=[b"h2"]), cb)
    assert isinstance(server, HandshakeError)
    assert "no supported ALPN protocol" in str(server)
    assert isinstance(client, SSL.Error)  # the server's fatal alert


@pytest.mark.anyio
@pytest.mark.parametrize("garbage", [b"GET / HTTP/1.1\r\n\r\n", os.urandom(300), b"\x16\x03"])
async def test_garbage_before_client_hello(garbage: bytes) -> None:
    ca, cb = memory_connection_pair()

    async def attacker() -> None:
        await ca.send(garbage)
        await ca.send_eof()

    _, server = await _both(attacker(), cb)
    assert isinstance(server, HandshakeError)


@contextlib.asynccontextmanager
async def tcp_hosts(muxers: Sequence[Muxer]) -> AsyncIterator[tuple[Host, Host]]:
    def host() -> contextlib.AbstractAsyncContextManager[Host]:
        return open_host(
            transports=[TcpTransport()],
            security=[Tls()],
            muxers=muxers,
            services=[Ping()],
            listen=["/ip4/127.0.0.1/tcp/0"],
        )

    async with host() as server, host() as client:
        server.set_stream_handler(ECHO, echo_handler)
        yield client, server


@pytest.mark.anyio
@pytest.mark.parametrize("muxer", [YAMUX, MPLEX])
async def test_hosts_over_tcp_ping_and_echo(muxer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[bytes] = []
    original = TlsSecureConnection.send

    async def recording_send(self: TlsSecureConnection, item: bytes) -> None:
        sent.append(bytes(item))
        await original(self, item)

    monkeypatch.setattr(TlsSecureConnection, "send", recording_send)
    muxers: list[Muxer] = [Yamux(), Mplex()] if muxer == YAMUX else [Mplex(), Yamux()]
    async with tcp_hosts(muxers) as (client, server):
        with anyio.fail_after(20):
            conn = await client.connect(server.addrs[0].encapsulate(f"/p2p/{server.peer_id}"))
            assert conn.security_protocol == PROTOCOL_ID
            assert conn.muxer_protocol == muxer
            (rtt,) = await client.service(Ping).ping(server.peer_id)
            assert rtt >= 0
            payload = os.urandom(1 << 20)
            stream = await client.new_stream(server.peer_id, ECHO)
            assert await echo_once(stream, payload) == payload
    # Inlined muxer negotiation: no multistream-select round on the secured connection for the
    # muxer (the first secured bytes of each side are muxer frames).
    assert not any(f"{muxer}\n".encode() in chunk for chunk in sent[:2])
    assert not sent[0].startswith(b"\x13/multistream/1.0.0\n")


@pytest.mark.anyio
async def test_tls12_client_is_rejected() -> None:
    ca, cb = memory_connection_pair()
    certified = make_certificate(A.private_key)

    async def old_client() -> SSL.Connection:
        return await _foreign_client(ca, certified=certified, max_version=SSL.TLS1_2_VERSION)

    _, server = await _both(old_client(), cb)
    assert isinstance(server, HandshakeError)


@pytest.mark.anyio
async def test_client_sending_a_certificate_chain_is_rejected() -> None:
    ca, cb = memory_connection_pair()
    certified = make_certificate(A.private_key)
    extra = make_certificate(C.private_key).certificate
    client = _foreign_client(ca, certified=certified, extra_chain=[extra])
    _, server = await _both(client, cb)
    assert isinstance(server, CertificateError)
    assert "more than one certificate" in str(server)


def test_certificate_is_renewed_after_half_its_lifetime() -> None:
    now = [1_800_000_000.0]
    channel = Tls(certificate_lifetime=100.0, clock=lambda: now[0])
    first = channel._context(A, server=True, now=now[0])
    assert channel._context(A, server=False, now=now[0] + 49) is not first
    assert channel._context(A, server=True, now=now[0] + 49) is first
    assert channel._context(A, server=True, now=now[0] + 50) is not first
    with pytest.raises(ValueError, match="positive"):
        Tls(certificate_lifetime=0)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=2000))
def test_server_session_fed_random_bytes_raises_only_handshake_errors(data: bytes) -> None:
    _, server = _sessions()
    try:
        server.receive_data(data)
        assert not server.step()
    except HandshakeError:
        pass
    server.data_to_send()


@pytest.mark.anyio
async def test_host_dialing_the_wrong_peer_gets_peer_id_mismatch() -> None:
    async with tcp_hosts([Yamux()]) as (client, server):
        wrong = server.addrs[0].encapsulate(f"/p2p/{C.peer_id}")
        with anyio.fail_after(20), pytest.raises(DialError) as caught:
            await client.connect(wrong)
        ((_, error),) = caught.value.errors
        assert isinstance(error, PeerIdMismatch)
        assert error.actual == str(server.peer_id)
        assert not client.connections(server.peer_id)


def test_a_session_is_freed_without_the_cycle_collector() -> None:
    client, server = _sessions()
    _pump(client, server)
    refs = [weakref.ref(client), weakref.ref(server)]
    gc.disable()
    try:
        del client, server
        assert [r() for r in refs] == [None, None]
    finally:
        gc.enable()
