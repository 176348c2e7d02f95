"""A peerstore that survives restarts: the in-memory peerstore, loaded from and saved to a JSON
file (addresses with their expiry, public keys, protocols, metadata, signed peer records).

Writes are atomic (a temporary file in the same directory, fsync, rename) and the file is
bounded (``max_file_bytes``: the most recently updated peers are written first, the rest left
out). A corrupt or oversized file is a cache lost, not a reason for a node not to start: by
default it is moved aside to ``<path>.corrupt`` with a warning and the store starts empty
(``on_corrupt="raise"`` makes it a ``PeerstoreFileError`` instead).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio

from p2pstack.errors import P2PError
from p2pstack.identity import PeerId, PeerRecord, PublicKey
from p2pstack.multiaddrs import parse_multiaddr
from p2pstack.peerstore._memory import Peerstore, PeerstoreLimits

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["FilePeerstore", "PeerstoreFileError"]

log = logging.getLogger("p2pstack.peerstore")

FORMAT = "p2pstack-peerstore"
VERSION = 1


class PeerstoreFileError(P2PError):
    """The peerstore file is unreadable, corrupt, of another format or too large."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64 text")
    return base64.b64decode(text, validate=True)


class FilePeerstore(Peerstore):
    """A ``Peerstore`` loaded from ``path`` (if it exists) and saved by ``save()`` or on leaving
    its ``with`` block.

    Args:
        path: the JSON file.
        limits: per-peer and total bounds (as for ``Peerstore``).
        clock: monotonic seconds (as for ``Peerstore``).
        wall_clock: unix seconds, used to carry expiry times across restarts.
        is_pinned: extra pin check (as for ``Peerstore``).
        max_file_bytes: largest file read or written.
        on_corrupt: ``"warn"``: move a bad file aside and start empty; ``"raise"``: raise.

    Raises:
        PeerstoreFileError: the file is bad and ``on_corrupt`` is ``"raise"``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        limits: PeerstoreLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        is_pinned: Callable[[PeerId], bool] | None = None,
        max_file_bytes: int = 16 * 1024 * 1024,
        on_corrupt: Literal["warn", "raise"] = "warn",
    ) -> None:
        super().__init__(limits=limits, clock=clock, is_pinned=is_pinned)
        self.path = Path(path)
        self.max_file_bytes = max_file_bytes
        self._wall = wall_clock
        self.skipped_entries = 0
        try:
            self._load()
        except PeerstoreFileError:
            if on_corrupt == "raise":
                raise
            aside = self.path.with_name(self.path.name + ".corrupt")
            log.warning(
                "peerstore file %s is unusable; moved to %s", self.path, aside, exc_info=True
            )
            os.replace(self.path, aside)

    def __enter__(self) -> FilePeerstore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.save()

    # -- loading -------------------------------------------------------------------------------

    def _load(self) -> None:
        try:
            with self.path.open("rb") as file:
                raw = file.read(self.max_file_bytes + 1)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise PeerstoreFileError(f"cannot read {self.path}: {exc}") from exc
        if len(raw) > self.max_file_bytes:
            raise PeerstoreFileError(f"{self.path} is larger than {self.max_file_bytes} bytes")
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PeerstoreFileError(f"{self.path} is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise PeerstoreFileError(f"{self.path} is not a p2pstack peerstore file")
        if doc.get("version") != VERSION or not isinstance(doc.get("peers"), list):
            raise PeerstoreFileError(f"{self.path}: unsupported version {doc.get('version')!r}")
        # Saved most recent first; load oldest first so the recency order is kept.
        for entry in reversed(doc["peers"]):
            try:
                self._load_peer(entry)
            except (P2PError, ValueError, TypeError, KeyError, binascii.Error) as exc:
                self.skipped_entries += 1
                log.warning("peerstore file %s: skipping a bad entry: %s", self.path, exc)

    def _load_peer(self, entry: dict[str, Any]) -> None:
        peer = PeerId.from_string(entry["id"])
        now_wall = self._wall()
        record = entry.get("record")
        if record is not None:
            peer_record, envelope = PeerRecord.from_envelope_bytes(_unb64(record))
            if peer_record.peer_id != peer:
                raise ValueError(f"record of {peer_record.peer_id} filed under {peer}")
            self._put_record(peer_record, envelope, len(_unb64(record)))
        for text, expiry in entry.get("addrs", []):
            ttl = math.inf if expiry is None else float(expiry) - now_wall
            if ttl > 0:
                self.add_addrs(peer, [parse_multiaddr(text)], ttl)
        if entry.get("key") is not None:
            self.set_public_key(peer, PublicKey.from_protobuf(_unb64(entry["key"])))
        if entry.get("protocols"):
            self.set_protocols(peer, [str(p) for p in entry["protocols"]])
        for key, value in dict(entry.get("metadata", {})).items():
            self.set_metadata(peer, str(key), str(value))
        data = self._peers.get(peer)
        if data is not None:
            age = max(now_wall - float(entry.get("touched", now_wall)), 0.0)
            data.touched = self._clock() - age

    # -- saving --------------------------------------------------------------------------------

    def _dump_peer(self, peer: PeerId) -> dict[str, Any] | None:
        data = self._live(peer)
        if data is None:
            return None
        now, now_wall = self._clock(), self._wall()
        addrs = [
            [str(addr), None if math.isinf(exp) else now_wall + (exp - now)]
            for addr, exp in data.addrs.items()
            if exp > now
        ]
        return {
            "id": peer.to_base58(),
            "touched": now_wall - (now - data.touched),
            "addrs": addrs,
            "key": _b64(data.public_key.to_protobuf()) if data.public_key else None,
            "protocols": data.protocols,
            "metadata": data.metadata,
            "record": _b64(data.envelope.to_bytes()) if data.envelope else None,
        }

    def save(self) -> int:
        """Write the store to ``path`` atomically, most recently updated peers first, leaving
        out the rest once ``max_file_bytes`` would be exceeded.

        Returns:
            How many peers were written.

        Raises:
            PeerstoreFileError: the file could not be written.
        """
        header = f'{{"format":{json.dumps(FORMAT)},"version":{VERSION},"peers":['
        parts: list[str] = []
        size = len(header)
        for peer in reversed(list(self._peers)):
            entry = self._dump_peer(peer)
            if entry is None:
                continue
            text = json.dumps(entry, separators=(",", ":"))
            if size + len(text) + 1 > self.max_file_bytes:
                break
            parts.append(text)
            size += len(text) + 1
        body = header + ",".join(parts) + "]}"
        self._write_atomically(body.encode())
        return len(parts)

    async def autosave(self, interval: float) -> None:
        """Save every ``interval`` seconds until cancelled, then once more. A failed save is
        logged and retried at the next interval (the store is a cache; the node goes on).

        Run it as a task: ``host.start_soon(store.autosave, 300.0)``.
        """
        try:
            while True:
                await anyio.sleep(interval)
                self._save_logged()
        finally:
            self._save_logged()

    def _save_logged(self) -> None:
        try:
            self.save()
        except PeerstoreFileError as exc:
            log.warning("could not save the peerstore: %s", exc)

    def _write_atomically(self, data: bytes) -> None:
        directory = self.path.parent
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        except OSError as exc:
            raise PeerstoreFileError(f"cannot write {self.path}: {exc}") from exc
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise PeerstoreFileError(f"cannot write {self.path}: {exc}") from exc
