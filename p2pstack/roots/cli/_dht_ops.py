"""The ``p2pstack dht`` actions against a DHT, and their output (issue 10, item 8): one JSON
object per line with ``--json``, readable lines and a progress line on long lookups without it.

Each action takes anything with the :class:`DhtApi` methods (``protocols.kad.Kad`` in the
command, a fake in the tests) and raises ``UserError`` for an expected failure, which ``main``
prints as one ``p2pstack: error:`` line with exit status 1.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TextIO, TypeVar

import anyio

from p2pstack.identity import PeerId
from p2pstack.roots.cli._common import Output, UserError
from protocols.kad import KadPeer, NotFound

__all__ = [
    "DhtApi",
    "DhtOutput",
    "Progress",
    "find_peer",
    "find_providers",
    "get_value",
    "provide",
    "put_value",
    "value_fields",
]

#: Seconds a lookup runs before the progress line appears, and between its updates.
PROGRESS_DELAY = 1.0

T = TypeVar("T")


class DhtApi(Protocol):
    """What the actions use of ``protocols.kad.Kad``."""

    async def put_value(self, key: bytes, value: bytes) -> int: ...

    async def get_value(self, key: bytes, *, quorum: int | None = None) -> bytes: ...

    async def provide(self, key: bytes) -> int: ...

    def find_providers(self, key: bytes, *, limit: int = 20) -> AsyncIterator[KadPeer]: ...

    async def find_peer(self, peer: PeerId) -> KadPeer: ...


class DhtOutput(Output):
    """The output of a ``dht`` action: :class:`Output` plus what its progress line adds to the
    elapsed time.

    Args:
        as_json: print JSON lines.
        detail: returns the progress line's detail (such as ``"12 requests sent"``), or None.
    """

    def __init__(self, as_json: bool, detail: Callable[[], str] | None = None) -> None:
        super().__init__(as_json)
        self.detail = detail


class Progress:
    """A status line on a terminal's stderr while a lookup runs longer than ``delay`` seconds:
    ``"<what>... 3 s"``, rewritten in place every ``delay`` seconds and erased at the end (or by
    :meth:`clear` before a result is printed). Nothing at all when ``stream`` is not a terminal
    (scripts, ``--json``), so a failure still leaves exactly one stderr line.

    Args:
        what: what is being done ("looking up /test/hello").
        enabled: show it (default: when ``stream`` is a terminal).
        stream: where (default: ``sys.stderr``).
        delay: seconds before the line appears, and between its updates.
        detail: returns text added after the elapsed time (``"12 requests sent"``).
    """

    def __init__(
        self,
        what: str,
        *,
        enabled: bool | None = None,
        stream: TextIO | None = None,
        delay: float = PROGRESS_DELAY,
        detail: Callable[[], str] | None = None,
    ) -> None:
        self._what = what
        self._detail = detail
        self._stream = sys.stderr if stream is None else stream
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._delay = delay
        self._shown = False

    async def run(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Await ``operation()`` with the line shown while it runs.

        Args:
            operation: the lookup.

        Returns:
            What it returned.

        Raises:
            Exception: what it raised, unwrapped.
        """
        if not self._enabled:
            return await operation()
        outcome: list[T] = []
        failure: list[Exception] = []

        async def operate(scope: anyio.CancelScope) -> None:
            try:
                outcome.append(await operation())
            except Exception as exc:  # relayed below, outside the task group
                failure.append(exc)
            finally:
                scope.cancel()

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(operate, tg.cancel_scope)
                await self._show(anyio.current_time())
        finally:
            self.clear()
        if failure:
            raise failure[0]
        return outcome[0]

    def clear(self) -> None:
        """Erase the line if it is shown (before printing a result)."""
        if self._shown:
            self._stream.write("\r\033[K")
            self._stream.flush()
            self._shown = False

    async def _show(self, start: float) -> None:
        while True:
            await anyio.sleep(self._delay)
            elapsed = anyio.current_time() - start
            detail = f", {self._detail()}" if self._detail is not None else ""
            self._stream.write(f"\r\033[K{self._what}... {elapsed:.0f} s{detail}")
            self._stream.flush()
            self._shown = True


def _progress(out: Output, what: str) -> Progress:
    detail = out.detail if isinstance(out, DhtOutput) else None
    return Progress(what, enabled=False if out.as_json else None, detail=detail)


def _addrs(peer: KadPeer) -> list[str]:
    return [str(a) for a in peer.addrs]


async def put_value(kad: DhtApi, out: Output, me: PeerId, key: str, value: str) -> int:
    """``dht put KEY VALUE``: ``{"event": "put", "key", "stored_at", "peer_id"}``.

    Args:
        kad: the DHT.
        out: the output.
        me: this client's peer ID.
        key: the record key (UTF-8 text, ``/namespace/...``).
        value: the value (UTF-8 text).

    Returns:
        0.

    Raises:
        UserError: no peer stored the record.
    """
    stored = await _progress(out, f"storing {key}").run(
        lambda: kad.put_value(key.encode(), value.encode())
    )
    if stored < 1:
        raise UserError(f"no peer stored {key}")
    out.event(
        "put",
        f"stored {key} at {stored} peer{'s' if stored != 1 else ''}",
        key=key,
        stored_at=stored,
        peer_id=str(me),
    )
    return 0


def value_fields(key: str, value: bytes) -> dict[str, object]:
    """The fields of a ``value`` event: ``value`` is the UTF-8 text, or None when the bytes are
    not UTF-8; ``value_b64`` is always the standard base64 of the bytes.

    Args:
        key: the record key as given.
        value: the value found.

    Returns:
        ``{"key", "value", "value_b64"}``.
    """
    try:
        text: str | None = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {"key": key, "value": text, "value_b64": base64.b64encode(value).decode("ascii")}


async def get_value(kad: DhtApi, out: Output, key: str, quorum: int | None) -> int:
    """``dht get KEY``: ``{"event": "value", "key", "value", "value_b64"}``.

    Args:
        kad: the DHT.
        out: the output.
        key: the record key (UTF-8 text).
        quorum: stop once this many peers answered with a value (None: the DHT's default).

    Returns:
        0.

    Raises:
        UserError: no value was found (exit status 1).
    """
    try:
        value = await _progress(out, f"looking up {key}").run(
            lambda: kad.get_value(key.encode(), quorum=quorum)
        )
    except NotFound:
        raise UserError(f"no value found for {key}") from None
    fields = value_fields(key, value)
    text = fields["value"]
    if text is None:
        text = f"({len(value)} bytes, not UTF-8; base64: {fields['value_b64']})"
    out.event("value", str(text), **fields)
    return 0


async def provide(kad: DhtApi, out: Output, me: PeerId, cid: str, key: bytes) -> int:
    """``dht provide CID``: ``{"event": "provide", "cid", "stored_at", "peer_id"}``.

    Args:
        kad: the DHT.
        out: the output.
        me: this client's peer ID (the provider).
        cid: the CID as given.
        key: its multihash bytes (the provider key on the wire).

    Returns:
        0.

    Raises:
        UserError: no peer stored the provider record.
    """
    stored = await _progress(out, f"announcing {cid}").run(lambda: kad.provide(key))
    if stored < 1:
        raise UserError(f"no peer stored the provider record of {cid}")
    out.event(
        "provide",
        f"{me} provides {cid}: announced to {stored} peer{'s' if stored != 1 else ''}",
        cid=cid,
        stored_at=stored,
        peer_id=str(me),
    )
    return 0


async def find_providers(kad: DhtApi, out: Output, cid: str, key: bytes, limit: int) -> int:
    """``dht find-providers CID``: ``{"event": "provider", "peer_id", "addrs"}`` per provider as
    it is found, then ``{"event": "done", "count"}``. Finding none is not a failure.

    Args:
        kad: the DHT.
        out: the output.
        cid: the CID as given.
        key: its multihash bytes.
        limit: most providers to report.

    Returns:
        0.
    """
    progress = _progress(out, f"looking for providers of {cid}")

    async def report() -> int:
        count = 0
        async for peer in kad.find_providers(key, limit=limit):
            progress.clear()
            count += 1
            addrs = _addrs(peer)
            out.event(
                "provider",
                f"{peer.peer_id} {' '.join(addrs)}".rstrip(),
                peer_id=str(peer.peer_id),
                addrs=addrs,
            )
        return count

    count = await progress.run(report)
    out.event("done", f"{count} provider{'s' if count != 1 else ''} found", count=count)
    return 0


async def find_peer(kad: DhtApi, out: Output, peer: PeerId) -> int:
    """``dht find-peer PEER_ID``: ``{"event": "peer", "peer_id", "addrs"}``.

    Args:
        kad: the DHT.
        out: the output.
        peer: the peer to find.

    Returns:
        0.

    Raises:
        UserError: the peer was not found (exit status 1).
    """
    try:
        found = await _progress(out, f"looking for {peer}").run(lambda: kad.find_peer(peer))
    except NotFound:
        raise UserError(f"peer {peer} not found") from None
    addrs = _addrs(found)
    lines = [f"peer {found.peer_id}", *(f"  {a}" for a in addrs)]
    out.event("peer", "\n".join(lines), peer_id=str(found.peer_id), addrs=addrs)
    return 0
