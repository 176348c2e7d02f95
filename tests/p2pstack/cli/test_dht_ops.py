"""The ``dht`` actions against a fake DHT: the exact JSON events, the readable output, the
failures (one ``UserError``, so one stderr line and exit 1) and the progress line."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.identity import Identity, PeerId
from p2pstack.roots.cli._common import Output, UserError
from p2pstack.roots.cli._dht_ops import (
    DhtOutput,
    Progress,
    find_peer,
    find_providers,
    get_value,
    provide,
    put_value,
    value_fields,
)
from protocols.kad import KadPeer, NotFound

pytestmark = pytest.mark.anyio

ME = Identity.generate().peer_id
OTHER = Identity.generate().peer_id
ADDR = Multiaddr("/ip4/127.0.0.1/tcp/4001")


class FakeKad:
    """Answers from dictionaries; ``stored`` is what put/provide report."""

    def __init__(self, stored: int = 3) -> None:
        self.stored = stored
        self.values: dict[bytes, bytes] = {}
        self.providers: dict[bytes, list[KadPeer]] = {}
        self.peers: dict[PeerId, KadPeer] = {}
        self.quorums: list[int | None] = []

    async def put_value(self, key: bytes, value: bytes) -> int:
        self.values[key] = value
        return self.stored

    async def get_value(self, key: bytes, *, quorum: int | None = None) -> bytes:
        self.quorums.append(quorum)
        if key not in self.values:
            raise NotFound(key.decode())
        return self.values[key]

    async def provide(self, key: bytes) -> int:
        self.providers.setdefault(key, []).append(KadPeer(ME, (ADDR,)))
        return self.stored

    async def find_providers(self, key: bytes, *, limit: int = 20) -> AsyncIterator[KadPeer]:
        for peer in self.providers.get(key, [])[:limit]:
            yield peer

    async def find_peer(self, peer: PeerId) -> KadPeer:
        if peer not in self.peers:
            raise NotFound(str(peer))
        return self.peers[peer]


def _events(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    captured = capsys.readouterr()
    assert captured.err == ""
    return [json.loads(line) for line in captured.out.splitlines()]


async def test_put_then_get_json(capsys: pytest.CaptureFixture[str]) -> None:
    kad = FakeKad()
    out = Output(as_json=True)
    assert await put_value(kad, out, ME, "/test/k", "héllo") == 0
    assert await get_value(kad, out, "/test/k", None) == 0
    put, value = _events(capsys)
    assert put == {"event": "put", "key": "/test/k", "stored_at": 3, "peer_id": str(ME)}
    assert value == {
        "event": "value",
        "key": "/test/k",
        "value": "héllo",
        "value_b64": base64.b64encode("héllo".encode()).decode(),
    }
    assert kad.values == {b"/test/k": "héllo".encode()}


async def test_get_passes_the_quorum_and_reads_binary(capsys: pytest.CaptureFixture[str]) -> None:
    kad = FakeKad()
    kad.values[b"/test/bin"] = b"\xff\x00"
    await get_value(kad, Output(as_json=False), "/test/bin", 2)
    assert kad.quorums == [2]
    assert capsys.readouterr().out == "(2 bytes, not UTF-8; base64: /wA=)\n"
    assert value_fields("/k", b"\xff\x00") == {"key": "/k", "value": None, "value_b64": "/wA="}


async def test_get_not_found_is_one_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UserError, match=r"^no value found for /test/missing$"):
        await get_value(FakeKad(), Output(as_json=True), "/test/missing", None)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("as_json", [True, False])
async def test_stored_nowhere_fails(as_json: bool, capsys: pytest.CaptureFixture[str]) -> None:
    kad = FakeKad(stored=0)
    with pytest.raises(UserError, match="no peer stored /test/k"):
        await put_value(kad, Output(as_json), ME, "/test/k", "v")
    with pytest.raises(UserError, match="no peer stored the provider record of Qm"):
        await provide(kad, Output(as_json), ME, "QmCid", b"\x12\x20" + bytes(32))
    assert capsys.readouterr().out == ""


async def test_provide_then_find_providers_json(capsys: pytest.CaptureFixture[str]) -> None:
    kad = FakeKad(stored=1)
    out = Output(as_json=True)
    key = b"\x12\x20" + bytes(32)
    await provide(kad, out, ME, "QmCid", key)
    kad.providers[key].append(KadPeer(OTHER, ()))
    await find_providers(kad, out, "QmCid", key, 20)
    provided, first, second, done = _events(capsys)
    assert provided == {"event": "provide", "cid": "QmCid", "stored_at": 1, "peer_id": str(ME)}
    assert first == {"event": "provider", "peer_id": str(ME), "addrs": [str(ADDR)]}
    assert second == {"event": "provider", "peer_id": str(OTHER), "addrs": []}
    assert done == {"event": "done", "count": 2}


async def test_find_providers_limit_and_none(capsys: pytest.CaptureFixture[str]) -> None:
    kad = FakeKad()
    key = b"\x12\x20" + bytes(32)
    kad.providers[key] = [KadPeer(ME, (ADDR,)), KadPeer(OTHER, (ADDR,))]
    await find_providers(kad, Output(as_json=False), "QmCid", key, 1)
    await find_providers(kad, Output(as_json=False), "QmOther", b"\x12\x20" + bytes(31) + b"\1", 5)
    assert capsys.readouterr().out.splitlines() == [
        f"{ME} {ADDR}",
        "1 provider found",
        "0 providers found",
    ]


async def test_find_peer(capsys: pytest.CaptureFixture[str]) -> None:
    kad = FakeKad()
    kad.peers[OTHER] = KadPeer(OTHER, (ADDR, Multiaddr("/ip4/10.0.0.1/tcp/1")))
    await find_peer(kad, Output(as_json=True), OTHER)
    (event,) = _events(capsys)
    assert event == {
        "event": "peer",
        "peer_id": str(OTHER),
        "addrs": [str(ADDR), "/ip4/10.0.0.1/tcp/1"],
    }
    await find_peer(kad, Output(as_json=False), OTHER)
    assert capsys.readouterr().out.splitlines() == [
        f"peer {OTHER}",
        f"  {ADDR}",
        "  /ip4/10.0.0.1/tcp/1",
    ]
    with pytest.raises(UserError, match=f"^peer {ME} not found$"):
        await find_peer(kad, Output(as_json=True), ME)


async def test_readable_put_and_provide(capsys: pytest.CaptureFixture[str]) -> None:
    kad = FakeKad(stored=1)
    await put_value(kad, Output(as_json=False), ME, "/test/k", "v")
    await provide(kad, Output(as_json=False), ME, "QmCid", b"\x12\x20" + bytes(32))
    assert capsys.readouterr().out.splitlines() == [
        "stored /test/k at 1 peer",
        f"{ME} provides QmCid: announced to 1 peer",
    ]


async def test_progress_line_on_a_terminal_is_erased() -> None:
    stream = io.StringIO()

    async def slow() -> int:
        await anyio.sleep(0.35)
        return 7

    with anyio.fail_after(5):
        result = await Progress("looking up /test/k", enabled=True, stream=stream, delay=0.1).run(
            slow
        )
    assert result == 7
    text = stream.getvalue()
    assert "\r\x1b[Klooking up /test/k... 0 s" in text
    assert text.count("looking up") >= 2  # rewritten in place
    assert text.endswith("\r\x1b[K")  # and erased


async def test_progress_relays_the_failure_and_stays_quiet_off_a_terminal() -> None:
    stream = io.StringIO()

    async def missing() -> int:
        await anyio.sleep(0.25)
        raise NotFound("x")

    with anyio.fail_after(5), pytest.raises(NotFound):
        await Progress("x", enabled=True, stream=stream, delay=0.1).run(missing)
    assert stream.getvalue().endswith("\r\x1b[K")
    quiet = io.StringIO()  # StringIO is no terminal
    with anyio.fail_after(5):
        assert await Progress("x", stream=quiet, delay=0.01).run(lambda: _after(0.05)) == 1
    assert quiet.getvalue() == ""


async def _after(seconds: float) -> int:
    await anyio.sleep(seconds)
    return 1


async def test_progress_detail_and_dht_output() -> None:
    stream = io.StringIO()
    counts = iter(range(1, 100))
    progress = Progress(
        "looking up /test/k",
        enabled=True,
        stream=stream,
        delay=0.1,
        detail=lambda: f"{next(counts)} requests sent",
    )
    with anyio.fail_after(5):
        assert await progress.run(lambda: _after(0.25)) == 1
    assert "looking up /test/k... 0 s, 1 requests sent" in stream.getvalue()
    assert "0 s, 2 requests sent" in stream.getvalue()
    out = DhtOutput(as_json=False, detail=lambda: "x")
    assert out.detail is not None and out.detail() == "x" and not out.as_json
