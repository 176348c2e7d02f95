from __future__ import annotations

import json
import logging
from pathlib import Path

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.identity import Identity, PeerRecord
from p2pstack.peerstore import ADDR_TTL_PERMANENT, FilePeerstore, PeerstoreFileError
from p2pstack.sim import run_virtual

ALICE = Identity.generate()
BOB = Identity.generate()
A1 = Multiaddr("/ip4/1.2.3.4/tcp/1")
A2 = Multiaddr("/ip6/2001:db8::1/udp/1/quic-v1")


class Clocks:
    """A monotonic clock and a wall clock that move together (a restart resets the former)."""

    def __init__(self) -> None:
        self.mono = 50.0
        self.wall = 1_800_000_000.0

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds

    def restart(self) -> None:
        self.mono = 3.0


def open_store(path: Path, clocks: Clocks, **kwargs: object) -> FilePeerstore:
    return FilePeerstore(path, clock=lambda: clocks.mono, wall_clock=lambda: clocks.wall, **kwargs)  # type: ignore[arg-type]


def test_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    clocks = Clocks()
    with open_store(path, clocks) as s:
        s.add_addrs(ALICE.peer_id, [A1], 100)
        s.add_addrs(ALICE.peer_id, [A2], ADDR_TTL_PERMANENT)
        s.set_public_key(ALICE.peer_id, ALICE.public_key)
        s.set_protocols(ALICE.peer_id, ["/ipfs/ping/1.0.0", "/ipfs/id/1.0.0"])
        s.set_metadata(ALICE.peer_id, "agent_version", "test/1")
        sealed = PeerRecord(BOB.peer_id, 7, (A1,)).seal(BOB.private_key)
        assert s.consume_signed_record(sealed)
    clocks.advance(40)
    clocks.restart()
    s2 = open_store(path, clocks)
    assert s2.addrs(ALICE.peer_id) == [A2, A1]
    assert s2.public_key(ALICE.peer_id) == ALICE.public_key
    assert s2.protocols(ALICE.peer_id) == ["/ipfs/ping/1.0.0", "/ipfs/id/1.0.0"]
    assert s2.metadata(ALICE.peer_id, "agent_version") == "test/1"
    envelope = s2.signed_record(BOB.peer_id)
    assert envelope is not None and envelope.to_bytes() == sealed.to_bytes()
    assert s2.skipped_entries == 0
    clocks.advance(61)  # A1 had 100 s: 40 + 61 later it is gone, the permanent one stays
    assert s2.addrs(ALICE.peer_id) == [A2]


def test_expired_while_down_is_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    clocks = Clocks()
    with open_store(path, clocks, limits=None) as s:
        s.add_addrs(ALICE.peer_id, [A1], 10)
        s.set_protocols(ALICE.peer_id, ["/a"])
    clocks.advance(10 * 3600)
    clocks.restart()
    s2 = open_store(path, clocks)
    assert ALICE.peer_id not in s2
    assert s2.protocols(ALICE.peer_id) == []


def test_file_bounded_most_recent_kept(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    clocks = Clocks()
    s = open_store(path, clocks, max_file_bytes=2000)
    ids = [Identity.generate().peer_id for _ in range(20)]
    for peer in ids:
        s.set_protocols(peer, ["/p" * 40])
        clocks.advance(1)
    written = s.save()
    assert 0 < written < 20
    assert path.stat().st_size <= 2000
    s2 = open_store(path, clocks, max_file_bytes=2000)
    assert set(s2.peers()) == set(ids[-written:])


def test_atomic_write_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    s = open_store(path, Clocks())
    s.set_protocols(ALICE.peer_id, ["/a"])
    s.save()
    s.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["peers.json"]
    assert json.loads(path.read_text())["format"] == "p2pstack-peerstore"


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"format": "other"}', b"\xff\xfe", b'{"format": "p2pstack-peerstore"}'],
)
def test_corrupt_file_warns_and_moves_aside(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "peers.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="p2pstack.peerstore"):
        s = open_store(path, Clocks())
    assert s.peers() == []
    assert "unusable" in caplog.text
    assert (tmp_path / "peers.json.corrupt").read_bytes() == content
    assert not path.exists()
    s.set_protocols(ALICE.peer_id, ["/a"])
    s.save()
    assert open_store(path, Clocks()).protocols(ALICE.peer_id) == ["/a"]


def test_corrupt_file_raises_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    path.write_bytes(b"[]")
    with pytest.raises(PeerstoreFileError, match="not a p2pstack peerstore file"):
        open_store(path, Clocks(), on_corrupt="raise")
    path.write_bytes(b" " * 100)
    with pytest.raises(PeerstoreFileError, match="larger than"):
        open_store(path, Clocks(), on_corrupt="raise", max_file_bytes=50)
    assert path.exists()


def test_bad_entries_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    clocks = Clocks()
    with open_store(path, clocks) as s:
        s.set_protocols(ALICE.peer_id, ["/a"])
        s.set_public_key(BOB.peer_id, BOB.public_key)
    doc = json.loads(path.read_text())
    for entry in doc["peers"]:
        if entry["id"] == BOB.peer_id.to_base58():
            entry["key"] = "!!not base64"
    doc["peers"].append({"id": "not a peer id"})
    path.write_text(json.dumps(doc))
    s2 = open_store(path, clocks)
    assert s2.skipped_entries == 2
    assert s2.protocols(ALICE.peer_id) == ["/a"]


def test_autosave_saves_periodically_and_when_cancelled(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    clocks = Clocks()
    s = open_store(path, clocks)
    sizes: list[int] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(s.autosave, 10.0)
            s.set_protocols(ALICE.peer_id, ["/a"])
            await anyio.sleep(5)
            assert not path.exists()
            await anyio.sleep(10)
            sizes.append(len(open_store(path, clocks).peers()))
            s.set_protocols(BOB.peer_id, ["/b"])
            tg.cancel_scope.cancel()
        sizes.append(len(open_store(path, clocks).peers()))

    run_virtual(main)
    assert sizes == [1, 2]


def test_autosave_survives_a_failed_write(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = open_store(tmp_path / "missing-dir" / "peers.json", Clocks())

    async def main() -> None:
        with anyio.move_on_after(25):
            await s.autosave(10.0)

    with caplog.at_level(logging.WARNING, logger="p2pstack.peerstore"):
        run_virtual(main)
    assert caplog.text.count("could not save the peerstore") == 3
