"""One-line descriptions of the failures the ``p2pstack`` commands expect (imported only when a
command fails, or by the commands that use the network)."""

from __future__ import annotations

import anyio

from p2pstack.errors import (
    NETWORK_ERRORS,
    DialError,
    NegotiationError,
    ProtocolNotSupported,
    UpgradeError,
)
from p2pstack.roots.cli._common import UserError

__all__ = ["EXPECTED", "STREAM_ERRORS", "describe", "describe_connect_failure"]

#: A byte stream ended under us (anyio's conventions): narrower than ``NETWORK_ERRORS``, for
#: the places that tell "the peer hung up" from other network failures.
STREAM_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)
#: Failures reported as one line and exit status 1 (the network's, ``TimeoutError`` among them as
#: an ``OSError``, and the user's); anything else is a bug and shows a traceback.
EXPECTED = (*NETWORK_ERRORS, UserError, ValueError)

#: What a peer closing the connection during the upgrade usually means.
_CLOSED_DURING_UPGRADE = (
    "the peer closed the connection during the upgrade "
    "(it may be at its connection limit, or refuse us)"
)


def describe(exc: BaseException) -> str:
    """One line for people.

    Args:
        exc: the failure.

    Returns:
        Its description, naming the cause where it is known.
    """
    if isinstance(exc, DialError) and len(exc.errors) == 1:
        addr, err = exc.errors[0]
        reason = _closed_during_upgrade(err) or describe(err)
        # Transports name the address themselves ("dial ADDR failed: refused"); say it once.
        for prefix in (f"dial {addr} failed: ", f"dial {addr} "):
            reason = reason.removeprefix(prefix)
        return f"could not connect to {addr}: {reason}"
    if isinstance(exc, ProtocolNotSupported):
        return _describe_unsupported(exc)
    if isinstance(exc, TimeoutError) and not str(exc):
        return "timed out"
    if isinstance(exc, anyio.EndOfStream):
        return "the peer closed the connection"
    if isinstance(exc, anyio.BrokenResourceError | anyio.ClosedResourceError):
        return "the connection was lost"
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror.lower()
        return f"{exc.filename}: {reason}" if exc.filename is not None else reason
    return str(exc) or type(exc).__name__


def describe_connect_failure(exc: BaseException) -> str | None:
    """Name the cause of a failed connect when the peer hung up on us mid-upgrade (what a node
    at capacity does: libp2p has no refusal message).

    Args:
        exc: what ``host.connect`` raised.

    Returns:
        The one-line message, or None when ``exc`` is another failure.
    """
    if isinstance(exc, DialError):
        return None  # ``describe`` looks inside, one address at a time
    reason = _closed_during_upgrade(exc)
    return f"could not connect: {reason}" if reason else None


def _closed_during_upgrade(exc: BaseException) -> str | None:
    """The message for a connect failure caused by the peer hanging up (directly, or as the
    cause or context of an upgrade or negotiation error), else None."""
    seen: BaseException | None = exc
    for _ in range(8):  # a short chain; never loop on a cycle
        if seen is None:
            return None
        if isinstance(seen, (*STREAM_ERRORS, ConnectionResetError, BrokenPipeError)):
            return _CLOSED_DURING_UPGRADE
        if not isinstance(seen, UpgradeError | NegotiationError) or isinstance(
            seen, ProtocolNotSupported
        ):
            return None
        seen = seen.__cause__ or seen.__context__
    return None


def _describe_unsupported(exc: ProtocolNotSupported) -> str:
    """Say which layer failed: a peer without our security channel or muxer answers ``na``
    during the upgrade, which reads like a missing application protocol otherwise."""
    from p2pstack.roots.defaults import MUXERS, SECURITY

    offered = ", ".join(exc.protocols)
    layers = (("security channel", SECURITY), ("stream muxer", MUXERS))
    for layer, factories in layers:
        known = {factory().protocol_id for factory in factories.values()}
        if exc.protocols and set(exc.protocols) <= known:
            return f"no {layer} in common with the peer (we offered {offered})"
    return str(exc)
