"""aioquic's sans-IO ``QuicConnection`` set up for libp2p (https://github.com/libp2p/specs/blob/master/quic/README.md):
the libp2p TLS certificate, ALPN ``libp2p``, no SNI, a server that asks for the client's
certificate, and receive windows granted as the application reads instead of as data arrives.

aioquic grants flow-control credit by doubling the window whenever half of it is used, whether
or not anyone reads the data, so a peer could fill memory behind a stream nobody reads. Here
credit follows consumption: a stream may receive at most ``stream_window`` bytes beyond what
was read from it, the connection ``connection_window`` beyond what was read from all streams.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from aioquic import tls
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection, QuicConnectionState
from cryptography.hazmat.primitives.serialization import Encoding

from transports.quic._config import ALPN, QuicConfig

if TYPE_CHECKING:
    from aioquic.quic.packet_builder import QuicPacketBuilder
    from aioquic.quic.recovery import QuicPacketSpace
    from aioquic.quic.stream import QuicStream

    from p2pstack.identity import CertifiedKey

__all__ = ["CID_LENGTH", "Libp2pQuic", "make_configuration"]

#: Length of the connection IDs we issue; the endpoint reads destination IDs of short-header
#: packets by this length.
CID_LENGTH = 8


def make_configuration(
    config: QuicConfig, key: CertifiedKey, *, is_client: bool
) -> QuicConfiguration:
    """An aioquic configuration for one libp2p connection.

    Args:
        config: the transport's settings.
        key: our certificate and its private key.
        is_client: whether we dial.

    Returns:
        The configuration: CA verification off (the libp2p certificate is checked by
        ``verify_certificate`` once the handshake completes), no server name.
    """
    return QuicConfiguration(
        alpn_protocols=[ALPN],
        is_client=is_client,
        connection_id_length=CID_LENGTH,
        idle_timeout=config.idle_timeout,
        max_data=config.connection_window,
        max_stream_data=config.stream_window,
        max_datagram_size=config.max_datagram_size,
        certificate=key.certificate,
        private_key=key.private_key,
        verify_mode=ssl.CERT_NONE,
        server_name=None,
    )


class Libp2pQuic(QuicConnection):
    """A ``QuicConnection`` whose server requests a client certificate and whose receive
    windows follow what the application has read (``consumed``).

    Args:
        configuration: from ``make_configuration``.
        config: the transport's settings (windows, stream limit).
        **kwargs: passed to ``QuicConnection`` (``original_destination_connection_id``).
    """

    def __init__(
        self, *, configuration: QuicConfiguration, config: QuicConfig, **kwargs: Any
    ) -> None:
        super().__init__(configuration=configuration, **kwargs)
        self._stream_window = config.stream_window
        self._connection_window = config.connection_window
        self.consumed_total = 0
        self.consumed: dict[int, int] = {}
        # Bidirectional streams the peer may open at once (aioquic's default is 128).
        self._local_max_streams_bidi.value = config.max_streams
        self._local_max_streams_bidi.sent = config.max_streams
        self._local_max_streams_uni.value = 0
        self._local_max_streams_uni.sent = 0

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        if not self._is_client:
            # aioquic only sends a CertificateRequest behind this flag; libp2p requires
            # mutual authentication (tls.md: "the server MUST require client authentication").
            self.tls._request_client_certificate = True

    # -- the few looks into aioquic's internals the driver needs, kept in one place ----------

    def open_bidi_stream(self) -> int:
        """Create our next bidirectional stream (aioquic creates streams on first send only,
        so ``get_next_available_stream_id`` alone would return the same ID again)."""
        stream_id = self.get_next_available_stream_id()
        self._get_or_create_stream_for_send(stream_id)
        return stream_id

    def unacknowledged(self, stream_id: int) -> int:
        """Bytes written on ``stream_id`` that the peer has not acknowledged yet."""
        stream = self._streams.get(stream_id)
        return 0 if stream is None else len(stream.sender._buffer)

    def anything_unacknowledged(self) -> bool:
        """Whether a stream still has data or a FIN the peer has not acknowledged."""
        for stream in self._streams.values():
            sender = stream.sender
            if sender._reset_error_code is not None or sender.is_finished:
                continue
            if sender._buffer or (sender._buffer_fin is not None and not sender._acked_fin):
                return True
        return False

    def closed_by_peer(self) -> events.ConnectionTerminated | None:
        """The peer's CONNECTION_CLOSE once it arrived, else ``None``. aioquic reports it
        (``ConnectionTerminated``) only when its draining period ends, three PTOs later; the
        connection is over as soon as it arrives (RFC 9000 section 10.2.2: nothing more may be
        sent), so its slot in the host's limits should be given back then."""
        if self._state is QuicConnectionState.DRAINING:
            return self._close_event
        return None

    def peer_certificate_der(self) -> bytes | None:
        """The peer's TLS certificate (DER) once the handshake got it, else ``None``."""
        certificate = self.tls._peer_certificate
        return None if certificate is None else certificate.public_bytes(Encoding.DER)

    @property
    def initial_decrypted(self) -> bool:
        """Whether any Initial packet was decrypted (a server's first datagram was genuine)."""
        space = self._spaces.get(tls.Epoch.INITIAL)
        return space is not None and space.largest_received_packet >= 0

    def credit_due(self, stream_id: int) -> bool:
        """Whether reading from ``stream_id`` freed enough window that an update should go out
        now (a quarter of a window on the stream or on the connection)."""
        stream = self._streams.get(stream_id)
        if stream is not None:
            target = self.consumed.get(stream_id, 0) + self._stream_window
            if target - stream.max_stream_data_local >= self._stream_window // 4:
                return True
        limit = self._local_max_data
        return (
            self.consumed_total + self._connection_window - limit.value
            >= self._connection_window // 4
        )

    def _write_connection_limits(self, builder: QuicPacketBuilder, space: QuicPacketSpace) -> None:
        limit = self._local_max_data
        target = self.consumed_total + self._connection_window
        if target - limit.value >= self._connection_window // 4:
            limit.value = target
        elif (
            limit.value == limit.sent
            and self._local_max_streams_bidi.value == self._local_max_streams_bidi.sent
        ):
            return  # called for every packet: nothing to announce (uni streams stay at 0)
        # The base class doubles the window when `used * 2 > value`: hide `used` from it.
        used, limit.used = limit.used, 0
        try:
            super()._write_connection_limits(builder=builder, space=space)
        finally:
            limit.used = used

    def _write_stream_limits(
        self, builder: QuicPacketBuilder, space: QuicPacketSpace, stream: QuicStream
    ) -> None:
        # Called for every stream on every packet: return early when there is nothing to say.
        local = stream.max_stream_data_local
        if not local or stream.stream_id is None:
            return
        target = self.consumed.get(stream.stream_id, 0) + self._stream_window
        if target - local >= self._stream_window // 4:
            stream.max_stream_data_local = target
        elif stream.max_stream_data_local_sent == local:
            return
        # Likewise the base class doubles when `highest_offset * 2 > max_stream_data_local`.
        receiver = stream.receiver
        highest, receiver.highest_offset = receiver.highest_offset, 0
        try:
            super()._write_stream_limits(builder=builder, space=space, stream=stream)
        finally:
            receiver.highest_offset = highest
