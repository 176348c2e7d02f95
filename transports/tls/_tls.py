"""The TLS 1.3 endpoint of ``/tls/1.0.0`` on pyOpenSSL memory BIOs: no sockets, no clock
(https://github.com/libp2p/specs/blob/master/tls/tls.md).

``TlsSession`` is a sans-IO core in the h11 sense: bytes from the network go in with
``receive_data``, bytes for the network come out of ``data_to_send``, and ``step`` advances the
handshake. OpenSSL does the TLS; this module adds what libp2p asks of it: TLS 1.3 only, mutual
authentication (the server requires a client certificate), a verification callback that accepts
the self-signed certificate only if ``verify_certificate`` does, at most one certificate in the
chain, no SNI, and ALPN with the muxers inlined.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto

from p2pstack.errors import (
    CertificateError,
    HandshakeError,
    LocalProtocolError,
    PeerIdMismatch,
    RemoteProtocolError,
    SecurityError,
)
from p2pstack.identity import CertifiedKey, PeerId, PublicKey, verify_certificate
from transports.tls._alpn import alpn_offer, early_muxer_of, select_alpn

__all__ = ["TlsSession", "make_context"]

#: Bytes taken from OpenSSL's outbound memory BIO per call.
_BIO_READ_SIZE = 256 * 1024


def make_context(certified: CertifiedKey, *, server: bool) -> SSL.Context:
    """Make an OpenSSL context for libp2p TLS with our certificate.

    Args:
        certified: our libp2p certificate and its key.
        server: whether the context is for the server (responder) side.

    Returns:
        A context for ``TlsSession``; it may be shared by many sessions of the same role.
    """
    context = SSL.Context(SSL.TLS_METHOD)
    # tls.md: "Endpoints MUST NOT negotiate lower TLS versions" than 1.3.
    context.set_min_proto_version(SSL.TLS1_3_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_TICKET | SSL.OP_NO_RENEGOTIATION)
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    context.use_certificate(certified.certificate)
    context.use_privatekey(certified.private_key)
    context.check_privatekey()
    # "servers MUST require client authentication during the TLS handshake, and MUST abort a
    # connection attempt if the client fails to provide the requested authentication".
    context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _verify_callback)
    if server:
        context.set_alpn_select_callback(_alpn_select_callback)
    return context


def _session_of(conn: SSL.Connection) -> TlsSession:
    session = conn.get_app_data()
    if not isinstance(session, TlsSession):  # pragma: no cover - every connection has one
        raise LocalProtocolError("TLS connection without a session")
    return session


def _verify_callback(
    conn: SSL.Connection, cert: crypto.X509, errnum: int, depth: int, ok: int
) -> bool:
    # OpenSSL's own verdict (``ok``, ``errnum``: a self-signed certificate is "untrusted") is
    # ignored: trust comes from the libp2p extension alone, checked by ``verify_certificate``.
    return _session_of(conn).on_certificate(cert, depth)


def _alpn_select_callback(conn: SSL.Connection, offered: list[bytes]) -> bytes:
    return _session_of(conn).on_alpn(offered)


class TlsSession:
    """One side of a libp2p TLS 1.3 connection, driven with bytes.

    Args:
        context: from ``make_context`` for this side's role.
        client: whether we are the client (the dialer).
        muxers: our muxer protocol ids, most preferred first, for ALPN.
        remote_peer: as client, the peer we dialed (``None`` accepts any).
        now: the current time (Unix seconds), for the certificate validity check.
    """

    def __init__(
        self,
        context: SSL.Context,
        *,
        client: bool,
        muxers: Sequence[str] = (),
        remote_peer: PeerId | None = None,
        now: float,
    ) -> None:
        self._ssl = SSL.Connection(context)
        self._ssl.set_app_data(self)
        self._client = client
        self._muxers = tuple(muxers)
        self._offer = alpn_offer(self._muxers)
        self._expected = remote_peer
        self._now = now
        self._verified: tuple[bytes, PublicKey] | None = None
        self._error: SecurityError | None = None
        self._complete = False
        self._failed = False
        self._peer_closed = False
        if client:
            # No SNI: "clients [...] MUST NOT send any value in the Server Name Indication".
            self._ssl.set_alpn_protos(self._offer)
            self._ssl.set_connect_state()
        else:
            self._ssl.set_accept_state()

    @property
    def handshake_complete(self) -> bool:
        """Whether the handshake finished and the peer was authenticated."""
        return self._complete

    @property
    def failed(self) -> bool:
        """Whether the handshake failed (``step`` raised)."""
        return self._failed

    @property
    def peer_closed(self) -> bool:
        """Whether the peer's close_notify was read: no more application data will come."""
        return self._peer_closed

    @property
    def remote_public_key(self) -> PublicKey:
        """The peer's host key from its verified certificate.

        Raises:
            LocalProtocolError: the handshake has not completed.
        """
        if not self._complete or self._verified is None:
            raise LocalProtocolError("TLS handshake not complete")
        return self._verified[1]

    @property
    def early_muxer(self) -> str | None:
        """The muxer selected through ALPN, or ``None`` if ``libp2p`` was."""
        return early_muxer_of(self._ssl.get_alpn_proto_negotiated())

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Take bytes from the network; they are processed by ``step`` or ``read``."""
        if data:
            self._ssl.bio_write(bytes(data) if isinstance(data, memoryview) else data)

    def data_to_send(self) -> bytes:
        """Remove and return every byte that should go to the network now (maybe ``b""``)."""
        chunks = self.data_to_send_chunks()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def data_to_send_chunks(self) -> list[bytes]:
        """Like ``data_to_send``, in pieces of at most 256 KiB: a driver writes them one after
        the other without joining them into one buffer first."""
        chunks = []
        while True:
            try:
                chunks.append(self._ssl.bio_read(_BIO_READ_SIZE))
            except SSL.WantReadError:
                return chunks

    def step(self) -> bool:
        """Advance the handshake with the bytes received so far.

        Returns:
            ``True`` once the handshake is complete and the peer authenticated; ``False`` while
            more bytes from the peer are needed. Send ``data_to_send()`` after each call.

        Raises:
            CertificateError: the peer's certificate was rejected.
            PeerIdMismatch: the server proved another peer ID than the one dialed.
            HandshakeError: any other failure (not TLS 1.3, no certificate, no common ALPN
                protocol, bytes that are not TLS).
        """
        if self._complete:
            return True
        try:
            return self._step()
        except SecurityError:
            self._failed = True
            raise

    def _step(self) -> bool:
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            return False
        except SSL.Error as exc:
            if self._error is not None:
                raise self._error from exc
            raise HandshakeError(f"TLS handshake failed: {_describe(exc)}") from exc
        self._finish_handshake()
        return True

    def _finish_handshake(self) -> None:
        if self._error is not None:  # pragma: no cover - OpenSSL fails the handshake first
            raise self._error
        if self._verified is None:
            raise HandshakeError("TLS peer presented no certificate")
        if self._ssl.get_protocol_version_name() != "TLSv1.3":  # pragma: no cover
            raise HandshakeError(f"TLS version {self._ssl.get_protocol_version_name()}")
        chain = self._ssl.get_peer_cert_chain(as_cryptography=True) or []
        leaf = self._verified[0]
        # OpenSSL lists the peer's certificate in the chain on the client side only.
        if any(c.public_bytes(serialization.Encoding.DER) != leaf for c in chain):
            raise CertificateError("peer sent more than one certificate")
        selected = self._ssl.get_alpn_proto_negotiated()
        if selected not in self._offer and self._client:
            raise HandshakeError(f"server selected ALPN {selected!r} that we did not offer")
        if not selected:
            raise HandshakeError("no ALPN protocol was negotiated")
        self._complete = True

    def on_certificate(self, cert: crypto.X509, depth: int) -> bool:
        """The verification callback: accept the peer's certificate only if it is a valid libp2p
        certificate (and, as client, of the peer we dialed).

        Args:
            cert: a certificate of the chain OpenSSL built.
            depth: its depth (0 is the peer's own certificate).

        Returns:
            Whether OpenSSL may go on; on ``False`` the reason is kept and raised by ``step``.
        """
        if depth != 0:
            self._error = CertificateError("peer sent more than one certificate")
            return False
        der = crypto.dump_certificate(crypto.FILETYPE_ASN1, cert)
        if self._verified is not None and self._verified[0] == der:
            return True  # called again for another OpenSSL complaint about the same cert
        try:
            key = verify_certificate(der, now=self._now)
        except CertificateError as exc:
            self._error = exc
            return False
        if self._expected is not None and not self._expected.matches(key):
            self._error = PeerIdMismatch(str(self._expected), str(PeerId.from_public_key(key)))
            return False
        self._verified = (der, key)
        return True

    def on_alpn(self, offered: list[bytes]) -> bytes:
        """The server's ALPN callback: the client's first protocol that we support.

        Raises:
            HandshakeError: nothing offered is supported (OpenSSL then aborts the handshake
                with a fatal alert, as the spec requires).
        """
        selected = select_alpn(offered, self._muxers)
        if selected is None:
            self._error = HandshakeError(f"no supported ALPN protocol in {offered!r}")
            raise self._error
        return selected

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt application data; take the records with ``data_to_send``.

        Raises:
            LocalProtocolError: the handshake is not complete or the session is closed.
        """
        if not self._complete:
            raise LocalProtocolError("TLS handshake not complete")
        try:
            self._ssl.sendall(data)
        except SSL.Error as exc:
            raise LocalProtocolError(f"TLS send failed: {_describe(exc)}") from exc

    def read(self, max_bytes: int) -> bytes:
        """Return up to ``max_bytes`` of decrypted application data (at most one record).

        Returns:
            The data, or ``b""`` when more bytes from the network are needed or the peer
            closed (see ``peer_closed``).

        Raises:
            RemoteProtocolError: a record failed authentication, or the peer sent an alert.
        """
        if self._peer_closed:
            return b""
        try:
            return self._ssl.recv(max_bytes)
        except SSL.WantReadError:
            return b""
        except SSL.ZeroReturnError:
            self._peer_closed = True
            return b""
        except SSL.Error as exc:
            raise RemoteProtocolError(f"TLS record error: {_describe(exc)}") from exc

    def close(self) -> None:
        """Queue a close_notify alert (our half-close); send ``data_to_send`` after it."""
        try:
            self._ssl.shutdown()
        except SSL.Error:
            pass  # already failed or closed: nothing to tell the peer


def _describe(exc: SSL.Error) -> str:
    """A short text for an OpenSSL error: its reason strings, not the raw tuple list."""
    args: Any = exc.args[0] if exc.args else None
    if isinstance(args, list) and args and all(isinstance(a, tuple) for a in args):
        return "; ".join(str(a[-1]) for a in args)
    return str(exc) or type(exc).__name__
