"""Sans-IO multistream-select 1.0 (``/multistream/1.0.0``): message codec and dialer/listener
state machines (https://github.com/libp2p/specs/blob/master/connections/README.md#protocol-negotiation,
https://github.com/multiformats/multistream-select).

Every message is ``uvarint(len) || utf8(text) || "\\n"``, the length counting the newline. Both
sides open with the header ``/multistream/1.0.0``; the dialer then proposes protocols one at a
time and the listener echoes the one it accepts or answers ``na``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from p2pstack.errors import (
    LocalProtocolError,
    NegotiationError,
    P2PError,
    ProtocolNotSupported,
    RemoteProtocolError,
)
from p2pstack.varint import IncompleteVarint, decode_uvarint, encode_uvarint

__all__ = [
    "LS",
    "MAX_MESSAGE_LENGTH",
    "MAX_REJECTED_PROPOSALS",
    "NA",
    "PROTOCOL_ID",
    "DialerCore",
    "ListenerCore",
    "decode_message",
    "encode_message",
]

PROTOCOL_ID = "/multistream/1.0.0"
#: The listener's refusal of a proposal.
NA = "na"
#: A request for the listener's protocol list; we answer it with ``na`` (the spec allows it).
LS = "ls"
#: Largest message body accepted or produced, newline included. go-multistream and
#: js-libp2p refuse longer messages, so a protocol ID is at most 1023 UTF-8 bytes.
MAX_MESSAGE_LENGTH = 1024
#: Proposals a listener refuses before it gives up on the dialer: bounds the work a peer can
#: make us do on one stream (real dialers propose a handful).
MAX_REJECTED_PROPOSALS = 64


def encode_message(text: str) -> bytes:
    """Encode one multistream-select message.

    Args:
        text: the message without its newline (a protocol ID, ``na``, ``ls`` or the header).

    Returns:
        ``uvarint(len) || text || "\\n"``.

    Raises:
        ValueError: ``text`` is empty, contains a newline, or is longer than
            ``MAX_MESSAGE_LENGTH - 1`` UTF-8 bytes.
    """
    body = text.encode("utf-8") + b"\n"
    if len(body) == 1 or b"\n" in body[:-1]:
        raise ValueError(f"invalid multistream-select message {text!r}")
    if len(body) > MAX_MESSAGE_LENGTH:
        raise ValueError(f"multistream-select message longer than {MAX_MESSAGE_LENGTH} bytes")
    return encode_uvarint(len(body)) + body


def decode_message(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[str, int] | None:
    """Decode one multistream-select message starting at ``pos``.

    Returns:
        ``(text, new_pos)`` with the newline stripped, or ``None`` when ``buf`` ends before the
        message does (read more and call again).

    Raises:
        RemoteProtocolError: the length is zero, over ``MAX_MESSAGE_LENGTH`` or badly encoded,
            the body does not end with a newline, or it is not UTF-8.
    """
    try:
        length, start = decode_uvarint(buf, pos)
    except IncompleteVarint:
        # Two bytes that both continue mean a length of at least 2**14: too long already, so
        # refuse now instead of waiting for bytes we would reject anyway.
        if len(buf) - pos >= 2:
            raise RemoteProtocolError("multistream-select message too long") from None
        return None
    if length == 0:
        raise RemoteProtocolError("empty multistream-select message")
    if length > MAX_MESSAGE_LENGTH:
        raise RemoteProtocolError(
            f"multistream-select message of {length} bytes exceeds {MAX_MESSAGE_LENGTH}"
        )
    end = start + length
    if len(buf) < end:
        return None
    if buf[end - 1] != 0x0A:
        raise RemoteProtocolError("multistream-select message does not end with a newline")
    try:
        text = bytes(buf[start : end - 1]).decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError("multistream-select message is not UTF-8") from None
    return text, end


class _Core:
    """What both roles share: the input buffer, the output buffer and the final state."""

    def __init__(self) -> None:
        self._in = bytearray()
        self._out = bytearray(encode_message(PROTOCOL_ID))
        self._got_header = False
        self._result: str | None = None
        self._leftover = b""
        self._failed: P2PError | None = None

    @property
    def result(self) -> str | None:
        """The agreed protocol, or ``None`` while negotiation is still going on."""
        return self._result

    @property
    def leftover(self) -> bytes:
        """Bytes received after the final negotiation message; they belong to the protocol.

        Empty until ``result`` is set.
        """
        return self._leftover

    def data_to_send(self) -> bytes:
        """Take the bytes to write to the peer now (possibly ``b""``)."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the peer; afterwards check ``result`` and ``data_to_send()``.

        Raises:
            NegotiationError: the peer's header is not ``/multistream/1.0.0``.
            ProtocolNotSupported: (dialer) the peer refused every proposal.
            RemoteProtocolError: a malformed or unexpected message.
            LocalProtocolError: called after negotiation finished or failed.
        """
        if self._failed is not None or self._result is not None:
            raise LocalProtocolError("multistream-select negotiation is already over")
        self._in += data
        pos = 0
        try:
            while self._result is None:
                decoded = decode_message(self._in, pos)
                if decoded is None:
                    break
                text, pos = decoded
                if not self._got_header:
                    if text != PROTOCOL_ID:
                        raise NegotiationError(f"peer does not speak {PROTOCOL_ID}: {text!r}")
                    self._got_header = True
                else:
                    self._handle(text)
        except P2PError as exc:
            self._failed = exc
            raise
        if self._result is not None:
            self._leftover = bytes(self._in[pos:])
            self._in.clear()
        else:
            del self._in[:pos]

    def _handle(self, text: str) -> None:
        raise NotImplementedError


class DialerCore(_Core):
    """The initiator's side: proposes ``protocols`` in order until the listener accepts one.

    The first ``data_to_send()`` holds the header and the first proposal in one buffer (as
    js-libp2p and rust-libp2p send them); after each ``na`` the next proposal is queued.
    """

    def __init__(self, protocols: Sequence[str]) -> None:
        """Args:
            protocols: protocol IDs in order of preference.

        Raises:
            ValueError: ``protocols`` is empty or holds an ID ``encode_message`` refuses.
        """
        super().__init__()
        if not protocols:
            raise ValueError("no protocols to propose")
        self._protocols = tuple(protocols)
        self._proposals = [encode_message(p) for p in self._protocols]
        self._index = 0
        self._out += self._proposals[0]

    def _handle(self, text: str) -> None:
        current = self._protocols[self._index]
        if text == current:
            self._result = current
        elif text == NA:
            self._index += 1
            if self._index == len(self._protocols):
                raise ProtocolNotSupported(self._protocols)
            self._out += self._proposals[self._index]
        else:
            raise RemoteProtocolError(f"unexpected answer {text!r} to proposal {current!r}")


class ListenerCore(_Core):
    """The responder's side: answers proposals, accepting the first one ``supports`` allows.

    Our header is queued at once, so a dialer that waits for it before proposing works, and so
    does one that sends header and proposal (and even protocol data) in one write.
    """

    def __init__(self, supports: Callable[[str], bool]) -> None:
        """Args:
        supports: whether a proposed protocol ID is one we serve.
        """
        super().__init__()
        self._supports = supports
        self._rejected = 0

    def _handle(self, text: str) -> None:
        if text == PROTOCOL_ID:
            # A repeated header is answered like the first (js-libp2p's listener does this).
            self._out += encode_message(PROTOCOL_ID)
        elif text not in (LS, NA) and self._supports(text):
            self._out += encode_message(text)
            self._result = text
        else:
            self._rejected += 1
            if self._rejected > MAX_REJECTED_PROPOSALS:
                raise RemoteProtocolError(
                    f"peer made more than {MAX_REJECTED_PROPOSALS} refused proposals"
                )
            self._out += encode_message(NA)
