"""The seed inputs of every target: the spec byte vectors of the unit tests, and a few complete
messages built with the fixed keys of the targets (so the fuzzer starts past the signatures).

``python -m fuzz --write-seeds`` rewrites ``fuzz/corpus/<target>/`` from this module. The core
targets take a control byte first (see each target's docstring): ``0x00`` is "listener / inbound,
everything in one call", ``0x01`` the other role.
"""

from __future__ import annotations

import datetime

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from multiaddr import Multiaddr

from fuzz import _discovery, _noise, _relay_client
from fuzz._identity import CERTIFICATE_CHECK_TIME
from fuzz._registry import TARGETS
from fuzz._swim import SIGNATURE, fuzz_peer
from p2pstack.framing import encode_lp
from p2pstack.identity import LIBP2P_TLS_OID, Envelope, Identity, PeerId, PeerRecord
from protocols.dcutr import DcutrMessage, MessageType
from protocols.dcutr import encode_body as dcutr_body
from protocols.dcutr import encode_message as dcutr_encode
from protocols.discovery.mdns import build_query as build_mdns_query
from protocols.discovery.mdns import build_response as build_mdns_response
from protocols.discovery.mdns._wire import Host as MdnsHost
from protocols.identify import IdentifyMessage, encode_identify, frame_identify
from protocols.membership import MemberState as S
from protocols.membership import Metadata
from protocols.membership import encode_message as swim_encode
from protocols.membership._wire import (
    Ack,
    Alive,
    Dead,
    Leave,
    MemberRecord,
    Ping,
    PingReq,
    PushPull,
    Suspect,
)
from protocols.membership._wire import Message as M
from protocols.pubsub import (
    RPC,
    ControlGraft,
    ControlIDontWant,
    ControlIHave,
    ControlIWant,
    ControlMessage,
    ControlPrune,
    Message,
    PeerInfo,
    SubOpts,
    frame_rpc,
    make_message,
)
from transports.mplex import Flag as MFlag
from transports.mplex import encode_header as mplex_header
from transports.noise import SIGNATURE_PREFIX, NoiseTransportState, encode_payload
from transports.plaintext import Exchange, encode_exchange
from transports.yamux import Flag, FrameType
from transports.yamux import encode_header as yamux_header

__all__ = ["seeds", "write_seeds"]

_HEADER = b"\x13/multistream/1.0.0\n"
_NA = b"\x03na\n"
_YAMUX = b"\x0d/yamux/1.0.0\n"
_MPLEX = b"\x0d/mplex/6.7.0\n"
_NOISE = b"\x07/noise\n"
# Key vectors of the libp2p peer-ids spec (as in tests/p2pstack/identity/vectors.py).
_ED25519_PUBLIC = bytes.fromhex(
    "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
)
_SECP256K1_PUBLIC = bytes.fromhex(
    "08021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99"
)
_SECP256K1_PRIVATE = bytes.fromhex(
    "0802122053DADF1D5A164D6B4ACDB15E24AA4C5B1D3461BDBD42ABEDB0A4404D56CED8FB"
)


def _wire_seeds() -> dict[str, dict[str, bytes]]:
    syn = yamux_header(FrameType.WINDOW_UPDATE, Flag.SYN, 1, 0)
    hello = yamux_header(FrameType.DATA, Flag.FIN, 1, 5) + b"hello"
    ack = yamux_header(FrameType.WINDOW_UPDATE, Flag.ACK, 1, 0)
    return {
        "varint": {
            "zero": b"\x00",
            "max-one-byte": b"\x7f",
            "128": b"\x80\x01",
            "201": b"\xc9\x01",
            "u64-max": b"\xff" * 9 + b"\x01",
            "not-minimal": b"\x80\x00",
        },
        "lp": {
            "two-messages": b"\x00\x05hello\x00",
            "one-then-rest": b"\x10\x02hi\x03abc",
            "bytewise": b"\x02\xc9\x01" + b"x" * 201,
            "over-the-limit": b"\x00\xad\x02",
        },
        "multistream": {
            "listener-noise-leftover": b"\x00" + _HEADER + _NOISE + b"\x00\x20handshake",
            "listener-ls": b"\x00" + _HEADER + b"\x03ls\n" + _HEADER + _YAMUX,
            "dialer-na-then-mplex": b"\x01" + _HEADER + _NA + _MPLEX,
            "dialer-bytewise": b"\x03" + _HEADER + _YAMUX + b"rest",
            "bad-header": b"\x00\x13/multistream/2.0.0\n",
        },
        "yamux_frame": {
            "syn": bytes.fromhex("00 01 0001 00000001 00000000"),
            "data": bytes.fromhex("00 00 0004 00000002 00000005"),
            "ping-ack": bytes.fromhex("00 02 0002 00000000 0000002a"),
            "go-away": bytes.fromhex("00 03 0000 00000000 00000001"),
        },
        "yamux_core": {
            "inbound-stream": b"\x40" + syn + hello,
            "inbound-bytewise": b"\x42" + syn + hello,
            "ping-and-go-away": b"\x00"
            + bytes.fromhex("00 02 0001 00000000 0000002a")
            + yamux_header(FrameType.GO_AWAY, 0, 0, 0),
            "our-stream": b"\x11"
            + ack
            + yamux_header(FrameType.DATA, 0, 1, 2)
            + b"hi"
            + yamux_header(FrameType.WINDOW_UPDATE, 0, 1, 1000)
            + yamux_header(FrameType.WINDOW_UPDATE, Flag.RST, 1, 0),
        },
        "mplex_frame": {
            "new-stream": bytes.fromhex("00 01 30"),
            "message": bytes.fromhex("02 02 68 69"),
            "close": bytes.fromhex("04 00"),
            "id-17": bytes.fromhex("8a 01 01 78"),
            "200-bytes": bytes.fromhex("11 c8 01") + b"a" * 200,
        },
        "mplex_core": {
            "inbound-stream": b"\x41" + bytes.fromhex("00 01 30 02 02 68 69 04 00"),
            "inbound-released": b"\x02" + bytes.fromhex("00 01 30 02 02 68 69 06 00"),
            "our-stream": b"\x11"
            + mplex_header(0, MFlag.MESSAGE_RECEIVER, 2)
            + b"hi"
            + mplex_header(0, MFlag.CLOSE_RECEIVER, 0)
            + mplex_header(0, MFlag.RESET_RECEIVER, 0),
        },
    }


def _noise_seeds() -> dict[str, dict[str, bytes]]:
    initiator, responder = _noise.identities()
    sender = NoiseTransportState(bytes(range(32)), bytes(range(32, 64)))
    frames = bytes(sender.encrypt(b"hi")) + bytes(sender.encrypt(b"there"))
    first = _noise.handshake_core(initiator=True, control=0).write_message()
    listener = _noise.handshake_core(initiator=False, control=0)
    listener.read_message(first[2:])
    second = listener.write_message()
    return {
        "noise_frames": {
            "structured": b"\x01\x05hello\x02hi",
            "structured-bytewise": b"\x03\x05hello\x02hi",
            "structured-flipped": b"\x11\x05hello\x02hi",
            "raw-valid-frames": b"\x00" + frames,
            "raw-short-frame": b"\x00\x00\x05hello",
            "raw-bad-tag": b"\x00\x00\x20" + bytes(32),
        },
        "noise_payload": {
            "with-muxer": b"\x0a\x01K\x12\x01S\x22\x0e\x12\x0c/yamux/1.0.0",
            "key-and-sig": b"\x0a\x01K\x12\x01S",
            "empty-extensions": b"\x22\x00",
            "signed": _signed_payload(responder, _noise.STATIC_KEYS[2]),
        },
        "noise_handshake": {
            "message-1": b"\x00" + first[2:],
            "message-2": b"\x01" + second[2:],
            "message-2-expected-peer": b"\x05" + second[2:],
            "payload-2": b"\x02" + _signed_payload(responder, _noise.STATIC_KEYS[2]),
            "payload-2-wrong-peer": b"\x0a" + _signed_payload(responder, _noise.STATIC_KEYS[2]),
            "payload-3": b"\x03" + _signed_payload(initiator, _noise.STATIC_KEYS[0]),
        },
    }


def _signed_payload(identity: Identity, static_private: bytes) -> bytes:
    public = X25519PrivateKey.from_private_bytes(static_private).public_key()
    static = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return encode_payload(
        identity_key=identity.public_key.to_protobuf(),
        identity_sig=identity.private_key.sign(SIGNATURE_PREFIX + static),
        stream_muxers=("/yamux/1.0.0",),
    )


def _identity_seeds() -> dict[str, dict[str, bytes]]:
    initiator, responder = _noise.identities()
    exchange = encode_exchange(
        Exchange(id=responder.peer_id.to_bytes(), pubkey=responder.public_key.to_protobuf())
    )
    record = PeerRecord(responder.peer_id, 7, (Multiaddr("/ip4/127.0.0.1/tcp/4001"),))
    envelope = record.seal(responder.private_key).to_bytes()
    message = IdentifyMessage(
        protocol_version="ipfs/0.1.0",
        agent_version="p2pstack/0.1.0",
        public_key=responder.public_key.to_protobuf(),
        listen_addrs=(Multiaddr("/ip4/127.0.0.1/tcp/4001"), Multiaddr("/ip6/::1/tcp/4001")),
        observed_addr=Multiaddr(f"/ip4/1.2.3.4/tcp/5/p2p/{initiator.peer_id}"),
        protocols=("/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"),
        signed_peer_record=envelope,
    )
    return {
        "plaintext": {
            "inbound": b"\x00" + exchange + b"rest",
            "outbound-bytewise": b"\x03" + exchange + b"rest",
            "spec-shape": b"\x00\x0c\x0a\x04\x00\x02ab\x12\x04\x08\x01\x12\x00",
        },
        "identify": {
            "framed": frame_identify(message),
            "unprefixed": encode_identify(message),
            "two-messages": frame_identify(IdentifyMessage(protocols=("/a",)))
            + frame_identify(IdentifyMessage(agent_version="go-libp2p")),
        },
        "keys": {
            "ed25519-public": b"\x00" + _ED25519_PUBLIC,
            "secp256k1-public": b"\x00" + _SECP256K1_PUBLIC,
            "secp256k1-private": b"\x01" + _SECP256K1_PRIVATE,
            "ed25519-private": b"\x01" + bytes.fromhex(_noise.RESPONDER_KEY_HEX),
            "peer-id-bytes": b"\x00" + responder.peer_id.to_bytes(),
            "peer-id-text": b"\x00" + str(responder.peer_id).encode(),
        },
        "envelope": {
            "peer-record": envelope,
            "other-domain": Envelope.seal(
                initiator.private_key, "fuzz", b"/t", b"payload"
            ).to_bytes(),
        },
        "peer_record": {"record": record.to_bytes()},
        "tls_certificate": {"ed25519-host-key": _tls_certificate(responder)},
    }


def _der(tag: int, value: bytes) -> bytes:
    length = len(value)
    if length < 0x80:
        return bytes([tag, length]) + value
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + value


def _tls_certificate(host: Identity) -> bytes:
    """A libp2p certificate for ``host``, valid around ``CERTIFICATE_CHECK_TIME``, made
    deterministically (a fixed P-256 key, RFC 6979 signature) so the seed file is stable."""
    key = ec.derive_private_key(0x1F2E3D4C5B6A7988, ec.SECP256R1())
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    signature = host.private_key.sign(b"libp2p-tls-handshake:" + spki)
    signed_key = _der(0x30, _der(0x04, host.public_key.to_protobuf()) + _der(0x04, signature))
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, "1")])
    valid_at = datetime.datetime.fromtimestamp(CERTIFICATE_CHECK_TIME, tz=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(valid_at - datetime.timedelta(days=1))
        .not_valid_after(valid_at + datetime.timedelta(days=365))
        .add_extension(x509.UnrecognizedExtension(LIBP2P_TLS_OID, signed_key), critical=False)
        .sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    )
    return certificate.public_bytes(Encoding.DER)


def _kad_seeds() -> dict[str, dict[str, bytes]]:
    # Written by @libp2p/kad-dht 16.4.5's codec (tests/protocols/kad/test_wire.py).
    find_node = bytes.fromhex("08041203616263")
    put_value = bytes.fromhex(
        "12072f746573742f6b1a2c0a072f746573742f6b1201762a1e"
        "323032342d31312d32335431323a33343a35362e3738393030303030305a"
    )
    peer = "0a26" + "0024080112202ffa35a99d3a3cfbb17bb7c1dc5561b18a8dcca4df38dc613ea859c37eb1336b"
    response = bytes.fromhex("08045001" + "4234" + peer + "1208047f000001060fa1" + "1800")
    providers = bytes.fromhex("0803" + "12016b" + "4a2a" + peer + "1802")
    return {
        "kad_message": {
            "find-node": find_node,
            "put-value": put_value,
            "response": response,
            "providers": providers,
            "go-cluster-level": find_node + b"\x50\x01",
        },
        "kad_stream": {
            "two-messages": b"\x00" + encode_lp(find_node) + encode_lp(response),
            "bytewise": b"\x02" + encode_lp(put_value) + encode_lp(b""),
        },
        "kad_lookup": {
            # k=8, alpha=3, seeds 0,3,6,9,12; ask, two answers, a failure, time, asks, stop.
            "answers-and-timeouts": bytes([0x37, 0x00, 0x21, 0xFF, 0x00, 0x22, 0x0F, 0xF0])
            + bytes([0x00, 0x63, 0x9F, 0x00, 0x8A, 0x00, 0x24, 0x00, 0x01, 0xBF, 0x00]),
            "stop": bytes([0x20, 0x00, 0x21, 0x00, 0x03, 0xBF, 0x00, 0x9F]),
        },
    }


def _pubsub_seeds() -> dict[str, dict[str, bytes]]:
    initiator, responder = _noise.identities()
    signed = make_message("t", b"hello", private_key=responder.private_key, seqno=1)
    control = ControlMessage(
        ihave=(ControlIHave("t", (b"id1", b"id2")),),
        iwant=(ControlIWant((b"id1",)),),
        graft=(ControlGraft("t"),),
        prune=(ControlPrune("t", (PeerInfo(initiator.peer_id, b"env"),), backoff=60),),
        idontwant=(ControlIDontWant((b"id2",)),),
    )
    return {
        "pubsub_rpc": {
            "subscribe": b"\x00" + frame_rpc(RPC(subscriptions=(SubOpts(True, "t"),))),
            "signed-message": b"\x00" + frame_rpc(RPC(publish=(signed,))),
            "unsigned-bytewise": b"\x09" + frame_rpc(RPC(publish=(Message(topic="t"),))),
            "control": b"\x03" + frame_rpc(RPC(control=control)),
        },
    }


def _rendezvous_seeds() -> dict[str, dict[str, bytes]]:
    from protocols.discovery.rendezvous import (
        Discover,
        Register,
        Unregister,
        encode_message,
        encode_peer_info,
    )

    signer, _ = _noise.identities()
    addr = Multiaddr("/ip4/127.0.0.1/tcp/4001")
    record = PeerRecord(signer.peer_id, 1, [addr]).seal(signer.private_key).to_bytes()
    register = encode_message(Register(ns="app", record=record, ttl=600))
    # From the third, keyless peer of fuzz._rendezvous.POINT_PEERS: b"\x12\x20" + 32 x 0x01.
    keyless = PeerId.from_bytes(b"\x12\x20" + b"\x01" * 32)
    info = encode_peer_info(keyless, (addr,))
    unsigned = encode_message(Register(ns="app", record=info, ttl=60))
    discover = encode_message(Discover(ns="app", limit=2))
    unregister = encode_message(Unregister(ns="app"))
    # py-libp2p 0.8.1's REGISTER (proto3: no type field) as it sent it in the interop test.
    py_register = bytes.fromhex(
        "123c0a0361707012320a260024080112208a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf374"
        "8801b40f6f5c1208047f000001060fa118a038"
    )
    return {
        "rendezvous_message": {
            "register": register,
            "py-register": py_register,
            "discover": discover,
        },
        "rendezvous_point": {
            "register-discover": b"\x00"
            + encode_lp(b"\x00" + register)
            + encode_lp(b"\x02" + unsigned)
            + encode_lp(b"\x05" + discover),
            "expire-unregister": b"\x00"
            + encode_lp(b"\x00" + register)
            + encode_lp(b"\x40" + discover)
            + encode_lp(b"\x00" + unregister),
        },
    }


def _swim_seeds() -> dict[str, dict[str, bytes]]:
    def enc(message: M) -> bytes:
        return swim_encode(message, max_size=4096)

    p0, p1, p2 = fuzz_peer(0), fuzz_peer(1), fuzz_peer(2)
    alive = Alive(p2, 1, (b"\x04\x7f\x00\x00\x01",), Metadata(2.0, {"k": b"v"}), SIGNATURE)
    claims = (alive, Suspect(p2, 1, p1), Dead(p2, 1, p1), Leave(p2, 2, SIGNATURE))
    push = PushPull(True, False, (MemberRecord(alive, S.SUSPECT, 1),))
    return {
        "swim_message": {
            "ping": enc(M(Ping(1, p0))),
            "ack-claims": enc(M(Ack(1), claims)),
            "push-pull": enc(M(push)),
        },
        "swim_core": {
            "claims": b"\x04" + enc(M(None, claims)),
            "suspect-self": b"\x00" + enc(M(PingReq(3, p2), (Suspect(p0, 0, p1),))),
            "join": b"\x08" + enc(M(push)),
        },
    }


def _dnsaddr_answer(
    values: list[bytes], *, rcode: dns.rcode.Rcode = dns.rcode.NOERROR, tc: bool = False
) -> bytes:
    response = dns.message.make_response(_discovery.QUERY)
    response.set_rcode(rcode)
    if tc:
        response.flags |= dns.flags.TC
    for value in values:  # one RRset each: an RRset is a set, its wire order is not stable
        name = _discovery.QUERY.question[0].name
        rrset = dns.rrset.RRset(name, dns.rdataclass.IN, dns.rdatatype.TXT)
        chunks = [value[i : i + 255] for i in range(0, len(value), 255)]
        rrset.add(dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks), 60)
        response.answer.append(rrset)
    wire: bytes = response.to_wire()
    return wire


def _discovery_seeds() -> dict[str, dict[str, bytes]]:
    peer = "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"  # a bootstrap.libp2p.io peer
    return {
        "dnsaddr_answer": {
            "records": _dnsaddr_answer(
                [
                    f"dnsaddr=/dnsaddr/sv15.example.org/p2p/{peer}".encode(),
                    f"dnsaddr=/ip4/127.0.0.1/tcp/4001/p2p/{peer}".encode(),
                    f"dnsaddr=/ip4/127.0.0.1/udp/4001/quic-v1/p2p/{peer}".encode(),
                    b"v=spf1 -all",
                ]
            ),
            "long-value": _dnsaddr_answer([b"dnsaddr=/dns4/" + b"a" * 300 + b".org/tcp/1"]),
            "nxdomain": _dnsaddr_answer([], rcode=dns.rcode.NXDOMAIN),
            "truncated": _dnsaddr_answer([], tc=True),
        }
    }


def _dcutr_seeds() -> dict[str, dict[str, bytes]]:
    public = Multiaddr("/ip4/1.2.3.4/tcp/4001")
    private = Multiaddr("/ip4/192.168.1.2/udp/4001/quic-v1")
    connect = DcutrMessage(MessageType.CONNECT, (public, private))
    sync = DcutrMessage(MessageType.SYNC)
    return {
        "dcutr_message": {
            "connect": dcutr_body(connect),
            "sync": dcutr_body(sync),
            "bogus-addr": b"\x08\x64\x12\x03\x04\x01\x02" + dcutr_body(connect)[2:],
        },
        "dcutr_core": {
            "responder-rounds": b"\x00" + (dcutr_encode(connect) + dcutr_encode(sync)) * 3,
            "responder-private": b"\x41" + dcutr_encode(connect) + dcutr_encode(sync),
            "initiator-answer": b"\x80" + dcutr_encode(connect),
            "initiator-sync-first": b"\x83" + dcutr_encode(sync),
        },
    }


def _mdns_seeds() -> dict[str, dict[str, bytes]]:
    peer = "12D3KooWKbRz4Fd5xBdUgZaCDHusWpQoGTvqEiAGbZ96d8gEswU1"
    txt = (f"dnsaddr=/ip4/127.0.0.1/tcp/4001/p2p/{peer}".encode(),)
    host = MdnsHost(peer_name="other", txt=txt, port=4001, ips=("127.0.0.1",))
    return {
        "mdns_message": {
            "query": b"\x01" + build_mdns_query(),
            "response": b"\x01" + build_mdns_response(host),
            "response_lan": b"\x00" + build_mdns_response(host),
            "legacy_query": b"\x03" + b"\x12\x34" + build_mdns_query()[2:],
        }
    }


def _relay_seeds() -> dict[str, dict[str, bytes]]:
    from protocols.relay import (
        HopMessage,
        HopType,
        Limit,
        Peer,
        Reservation,
        Status,
        StopMessage,
        StopType,
        encode_hop,
        encode_stop,
        make_voucher,
    )

    relay, peer = _noise.identities()
    addr = Multiaddr(f"/ip4/127.0.0.1/tcp/4001/p2p/{relay.peer_id}")
    voucher = make_voucher(relay.private_key, peer.peer_id, 1_700_000_000)
    limit = Limit(duration=120, data=1 << 17)
    ok = HopMessage(
        type=HopType.STATUS,
        status=Status.OK,
        reservation=Reservation(expire=1_700_000_000, addrs=[addr], voucher=voucher),
        limit=limit,
    )
    connect = HopMessage(type=HopType.CONNECT, peer=Peer(id=peer.peer_id))
    stop = StopMessage(type=StopType.CONNECT, peer=Peer(id=relay.peer_id), limit=limit)
    # reserve B, A, C; connect A->B; data both ways; close; time; connection closed.
    steps = bytes([0x08, 1, 0, 0x00, 2, 0, 0x10, 1, 0, 0x01, 1, 0, 0x03, 0, 200, 0x03, 1, 255])
    steps += bytes([0x02, 0, 0, 0x05, 40, 0, 0x0C, 0, 0, 0x05, 30, 0])
    return {
        "relay_message": {
            "reserve": b"\x00" + encode_hop(HopMessage(type=HopType.RESERVE)),
            "reserve-ok": b"\x00" + encode_hop(ok),
            "connect": b"\x00" + encode_hop(connect),
            "stop-connect": b"\x01" + encode_stop(stop),
            "voucher": b"\x02" + voucher,
        },
        "relay_core": {"reserve-connect-expire": b"\x00" + steps},
    }


def _p2pd_seeds() -> dict[str, dict[str, bytes]]:
    from p2pstack.framing import encode_lp
    from p2pstack.identity import PeerId
    from p2pstack.p2pd.pb import p2pd_pb2 as pb

    peer = PeerId.from_string("12D3KooWKbRz4Fd5xBdUgZaCDHusWpQoGTvqEiAGbZ96d8gEswU1").to_bytes()
    addr = bytes.fromhex("047f000001060fa1")  # /ip4/127.0.0.1/tcp/4001
    ok = pb.Response.OK
    identify = pb.Response(type=ok, identify=pb.IdentifyResponse(id=peer, addrs=[addr]))
    begin = pb.Response(type=ok, dht=pb.DHTResponse(type=pb.DHTResponse.BEGIN))
    value = pb.DHTResponse(type=pb.DHTResponse.VALUE, peer=pb.PeerInfo(id=peer, addrs=[addr]))
    end = pb.DHTResponse(type=pb.DHTResponse.END)
    message = pb.PSMessage(data=b"hello", seqno=b"\x00" * 8, topicIDs=["t"])
    error = pb.Response(type=pb.Response.ERROR, error=pb.ErrorResponse(msg="Peer not found"))
    info = pb.StreamInfo(peer=peer, addr=addr, proto="/echo/1.0.0")

    def lp(*messages: pb.Response | pb.DHTResponse | pb.PSMessage | pb.StreamInfo) -> bytes:
        return b"".join(encode_lp(m.SerializeToString()) for m in messages)

    return {
        "p2pd_reply": {
            "identify": b"\x00" + lp(identify),
            "dht-stream": b"\x00" + lp(begin, value, end),
            "subscription": b"\x01" + lp(pb.Response(type=ok), message, message),
            "stream-info": b"\x02" + lp(pb.Response(type=ok, streamInfo=info), info),
            "error": b"\x00" + lp(error),
        }
    }


def _daemon_seeds() -> dict[str, dict[str, bytes]]:
    from p2pstack.p2pd.pb import p2pd_pb2 as pd

    peer = bytes.fromhex("002408011220") + bytes(32)  # an identity-multihash peer ID
    addr = bytes.fromhex("047f000001060fa1")  # /ip4/127.0.0.1/tcp/4001
    requests = {
        "identify": pd.Request(type=pd.Request.IDENTIFY),
        "connect": pd.Request(
            type=pd.Request.CONNECT, connect=pd.ConnectRequest(peer=peer, addrs=[addr], timeout=5)
        ),
        "stream_open": pd.Request(
            type=pd.Request.STREAM_OPEN,
            streamOpen=pd.StreamOpenRequest(peer=peer, proto=["/echo/1.0.0"]),
        ),
        "dht_put": pd.Request(
            type=pd.Request.DHT,
            dht=pd.DHTRequest(type=pd.DHTRequest.PUT_VALUE, key=b"/pk/x", value=b"v"),
        ),
        "pubsub_subscribe": pd.Request(
            type=pd.Request.PUBSUB, pubsub=pd.PSRequest(type=pd.PSRequest.SUBSCRIBE, topic="t")
        ),
    }
    bodies = {name: r.SerializeToString() for name, r in requests.items()}
    return {
        "p2pd_request": bodies,
        "p2pd_stream": {
            "two_requests": b"\x02" + encode_lp(bodies["identify"]) + encode_lp(bodies["connect"]),
            "then_raw": b"\x0c" + encode_lp(bodies["stream_open"]) + b"raw stream bytes",
        },
    }


def seeds() -> dict[str, dict[str, bytes]]:
    """Every target's seeds, by target name, then by file name."""
    return {
        **_wire_seeds(),
        **_noise_seeds(),
        **_identity_seeds(),
        **_kad_seeds(),
        **_pubsub_seeds(),
        **_rendezvous_seeds(),
        **_swim_seeds(),
        **_discovery_seeds(),
        **_mdns_seeds(),
        **_relay_seeds(),
        **_relay_client.seeds(),
        **_p2pd_seeds(),
        **_autonat_seeds(),
        **_daemon_seeds(),
        **_dcutr_seeds(),
    }


def _autonat_seeds() -> dict[str, dict[str, bytes]]:
    from fuzz._autonat import autonat_seeds

    return autonat_seeds()


def write_seeds() -> list[str]:
    """Rewrite each target's seed directory from ``seeds()``.

    Returns:
        The files written, relative to the corpus directory.
    """
    written = []
    for name, files in seeds().items():
        directory = TARGETS[name].seed_dir
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.iterdir():
            old.unlink()
        for file_name, data in files.items():
            (directory / file_name).write_bytes(data)
            written.append(f"{name}/{file_name}")
    return written
