"""DHT requests: FIND_PEER, FIND_PROVIDERS, GET_CLOSEST_PEERS, GET_PUBLIC_KEY, GET_VALUE,
SEARCH_VALUE, PUT_VALUE, PROVIDE. Streaming answers are one OK ``Response`` carrying a BEGIN
``DHTResponse``, then bare ``DHTResponse`` frames (VALUE...) and an END frame, as go's daemon
writes them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import anyio
from multiaddr import Multiaddr

from p2pstack.identity import PeerId
from p2pstack.p2pd.pb import p2pd_pb2 as pb
from p2pstack.roots.daemon import _wire as w
from p2pstack.varint import IncompleteVarint, decode_uvarint

if TYPE_CHECKING:
    from p2pstack.roots.daemon._server import ControlConnection, DaemonServer
    from protocols.kad import Kad

__all__ = ["announced_addrs", "cid_multihash", "handle_dht"]

_STREAMING = ("FIND_PROVIDERS", "GET_CLOSEST_PEERS", "SEARCH_VALUE")


def cid_multihash(cid: bytes) -> bytes:
    """The multihash of a binary CID (CIDv0 is a bare sha2-256 multihash; CIDv1 is
    ``<version><codec><multihash>``), the DHT's provider key.

    Raises:
        ControlError: not a binary CID.
    """
    if len(cid) == 34 and cid[:2] == b"\x12\x20":
        return cid
    try:
        version, pos = decode_uvarint(cid)
        if version != 1:
            raise w.ControlError(f"unsupported CID version {version}")
        _codec, pos = decode_uvarint(cid, pos)
        _hash, start = decode_uvarint(cid, pos)
        length, end = decode_uvarint(cid, start)
    except (IncompleteVarint, ValueError) as exc:
        raise w.ControlError(f"invalid CID: {exc}") from None
    if end + length != len(cid):
        raise w.ControlError("invalid CID: the multihash length does not match")
    return cid[pos:]


def announced_addrs(peer: PeerId, addrs: Iterable[Multiaddr]) -> list[Multiaddr]:
    """``addrs`` without ``/p2p/`` suffixes and duplicates, dropping addresses of other peers
    and relayed ones (FIND_PEER answers with what the target itself listens on)."""
    out: list[Multiaddr] = []
    for addr in addrs:
        named = addr.get_peer_id()
        if named is not None:
            if named != str(peer) or "p2p-circuit" in str(addr):
                continue
            addr = addr.decapsulate(f"/p2p/{named}")  # noqa: PLW2901
        if addr not in out:
            out.append(addr)
    return out


def _kad(server: DaemonServer) -> Kad:
    from p2pstack.roots.daemon._server import Unavailable

    if server.kad is None:
        raise Unavailable("DHT not enabled (start the daemon with -dht)")
    return server.kad


async def handle_dht(server: DaemonServer, command: w.Dht, conn: ControlConnection) -> bool:
    """Answer a DHT request on ``conn``.

    Returns:
        True for a streamed answer (the connection is done), False otherwise.
    """
    from p2pstack.roots.daemon._server import EXPECTED, describe

    timeout = command.timeout or server.config.default_timeout
    if command.op in _STREAMING:
        return await _streamed(server, command, conn, timeout)
    try:
        kad = _kad(server)
        with anyio.fail_after(timeout):
            response = await _single(server, kad, command)
    except EXPECTED as exc:
        response = w.error_response(describe(exc))
    await conn.send(w.encode(response))
    return False


async def _single(server: DaemonServer, kad: Kad, command: w.Dht) -> pb.Response:
    response = w.ok_response()
    match command.op:
        case "FIND_PEER":
            assert command.peer is not None
            found = await kad.find_peer(command.peer)
            record = server.host.peerstore.peer_record(command.peer)
            addrs = announced_addrs(command.peer, found.addrs)
            if record is not None:  # the signed record says what the peer announces
                signed = set(announced_addrs(command.peer, record.addrs))
                addrs = [a for a in addrs if a in signed] or sorted(signed, key=str)
            frame = w.dht_frame(pb.DHTResponse.VALUE, peer=w.peer_info(command.peer, addrs))
        case "GET_PUBLIC_KEY":
            assert command.peer is not None
            frame = w.dht_frame(
                pb.DHTResponse.VALUE, value=await _public_key(server, kad, command.peer)
            )
        case "GET_VALUE":
            assert command.key is not None
            frame = w.dht_frame(pb.DHTResponse.VALUE, value=await kad.get_value(command.key))
        case "PUT_VALUE":
            assert command.key is not None and command.value is not None
            await _put(kad, command.key, command.value)
            return response
        case "PROVIDE":
            assert command.key is not None
            await _provide(kad, cid_multihash(command.key))
            return response
        case _:
            raise w.ControlError(f"unsupported DHT request {command.op}")
    response.dht.CopyFrom(frame)
    return response


async def _put(kad: Kad, key: bytes, value: bytes) -> None:
    from protocols.kad import NotFound

    try:
        await kad.put_value(key, value)
    except NotFound:
        pass  # stored here (put_value stores before asking); no peer to replicate to yet


async def _provide(kad: Kad, key: bytes) -> None:
    from protocols.kad import NotFound

    try:
        await kad.provide(key)
    except NotFound:
        pass  # recorded here; announced to peers when it is republished


async def _public_key(server: DaemonServer, kad: Kad, peer: PeerId) -> bytes:
    known = server.host.peerstore.public_key(peer) or peer.extract_public_key()
    if known is not None:
        return known.to_protobuf()
    return await kad.get_value(b"/pk/" + peer.to_bytes())


async def _streamed(
    server: DaemonServer, command: w.Dht, conn: ControlConnection, timeout: float
) -> bool:
    from p2pstack.roots.daemon._server import EXPECTED, describe

    try:
        kad = _kad(server)
        key = (
            cid_multihash(command.key)
            if command.op == "FIND_PROVIDERS" and command.key
            else command.key
        )
    except EXPECTED as exc:
        await conn.send(w.encode(w.error_response(describe(exc))))
        return False
    assert key is not None
    begin = w.ok_response()
    begin.dht.CopyFrom(w.dht_frame(pb.DHTResponse.BEGIN))
    await conn.send(w.encode(begin))
    try:
        with anyio.move_on_after(timeout):
            await _stream_values(kad, command, key, conn)
    except EXPECTED:
        pass  # the stream ends early: END tells the client there is nothing more
    await conn.send(w.encode(w.dht_frame(pb.DHTResponse.END)))
    return True


async def _stream_values(kad: Kad, command: w.Dht, key: bytes, conn: ControlConnection) -> None:
    if command.op == "FIND_PROVIDERS":
        async for provider in kad.find_providers(key, limit=command.count or 20):
            info = w.peer_info(provider.peer_id, announced_addrs(provider.peer_id, provider.addrs))
            await conn.send(w.encode(w.dht_frame(pb.DHTResponse.VALUE, peer=info)))
    elif command.op == "GET_CLOSEST_PEERS":
        result = await kad.get_closest_peers(key)
        for peer in result.closest:
            value = peer.peer_id.to_bytes()
            await conn.send(w.encode(w.dht_frame(pb.DHTResponse.VALUE, value=value)))
    else:  # SEARCH_VALUE: the best value found (go streams each better one; we send the best)
        value = await kad.get_value(key)
        await conn.send(w.encode(w.dht_frame(pb.DHTResponse.VALUE, value=value)))
