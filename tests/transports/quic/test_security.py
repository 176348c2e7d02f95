"""Peer authentication inside QUIC's handshake (libp2p tls.md): the server requires a client
certificate, certificates are checked with ``verify_certificate``, and the dialed peer ID must
be the one proved."""

from __future__ import annotations

import datetime
import ssl

import anyio
import pytest
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from multiaddr import Multiaddr

from p2pstack.errors import CertificateError, P2PError
from p2pstack.identity import LIBP2P_TLS_OID, CertifiedKey, Identity, make_certificate
from tests.transports.quic.conftest import LOCAL4
from transports.quic import QuicConfig, QuicListener, QuicTransport, parse_quic_multiaddr

pytestmark = pytest.mark.anyio

FAST = QuicConfig(handshake_timeout=3.0)


def _forged(extension_from: CertifiedKey) -> CertifiedKey:
    """A certificate for a fresh key carrying another certificate's libp2p extension (whose
    host signature covers the other key, not this one)."""
    ext = extension_from.certificate.extensions.get_extension_for_oid(LIBP2P_TLS_OID)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(x509.NameOID.SERIAL_NUMBER, "1")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(ext.value, critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertifiedKey(certificate=certificate, private_key=key)


async def _raw_client(addr: Multiaddr) -> events.ConnectionTerminated | None:
    """Handshake with a bare aioquic client that has no certificate; return how the server
    ended the connection (``None`` if it did not within a few seconds)."""
    target = parse_quic_multiaddr(addr)
    assert target is not None
    config = QuicConfiguration(is_client=True, alpn_protocols=["libp2p"], verify_mode=ssl.CERT_NONE)
    quic = QuicConnection(configuration=config)
    async with await anyio.create_connected_udp_socket(*target) as sock:
        quic.connect(target, now=anyio.current_time())
        with anyio.move_on_after(5):
            while True:
                for data, _ in quic.datagrams_to_send(anyio.current_time()):
                    await sock.send(data)
                timer = quic.get_timer()
                wait = 0.05 if timer is None else max(0.0, timer - anyio.current_time())
                with anyio.move_on_after(wait):
                    quic.receive_datagram(await sock.receive(), target, anyio.current_time())
                if timer is not None and anyio.current_time() >= timer:
                    quic.handle_timer(anyio.current_time())
                while (event := quic.next_event()) is not None:
                    if isinstance(event, events.ConnectionTerminated):
                        return event
    return None


async def _nothing_accepted(listener: QuicListener) -> bool:
    with anyio.move_on_after(0.5):
        await listener.accept()
        return False
    return True


async def test_client_without_certificate_is_rejected() -> None:
    async with QuicTransport(identity=Identity.generate(), config=FAST) as server:
        listener = await server.listen(Multiaddr(LOCAL4))
        ended = await _raw_client(listener.multiaddrs[0])
        assert ended is not None
        assert ended.error_code == 0x100 + 116  # TLS alert certificate_required
        assert await _nothing_accepted(listener)


async def test_client_with_forged_certificate_is_rejected() -> None:
    async with (
        QuicTransport(identity=Identity.generate(), config=FAST) as server,
        QuicTransport(identity=Identity.generate(), config=FAST) as client,
    ):
        listener = await server.listen(Multiaddr(LOCAL4))
        client._key = _forged(make_certificate(Identity.generate().private_key))
        with anyio.fail_after(10):
            try:
                conn = await client.dial(listener.multiaddrs[0], remote_peer=None)
            except P2PError:
                pass  # the server may close before the client finished its own handshake
            else:
                with anyio.fail_after(5):
                    await conn.muxed.run()  # the server's CONNECTION_CLOSE ends it
                assert conn.muxed.is_closed
        assert await _nothing_accepted(listener)


async def test_server_with_forged_certificate_is_rejected() -> None:
    async with (
        QuicTransport(identity=Identity.generate(), config=FAST) as server,
        QuicTransport(identity=Identity.generate(), config=FAST) as client,
    ):
        listener = await server.listen(Multiaddr(LOCAL4))
        server._key = _forged(make_certificate(Identity.generate().private_key))
        with anyio.fail_after(10), pytest.raises(CertificateError):
            await client.dial(listener.multiaddrs[0], remote_peer=None)
        assert await _nothing_accepted(listener)
