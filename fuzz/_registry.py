"""The fuzz targets by name: where each lives and what it exercises.

Kept free of p2pstack imports so that the runner can list targets without loading the stack;
``load`` imports a target's module on demand.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CORPUS_DIR", "SELF_TESTS", "TARGETS", "TargetSpec", "load"]

#: Checked-in seed inputs, one directory per target (written by ``python -m fuzz --write-seeds``).
CORPUS_DIR = Path(__file__).resolve().parent / "corpus"


@dataclass(frozen=True)
class TargetSpec:
    """One fuzz target.

    Attributes:
        name: the name given on the command line.
        entry: ``"module:function"`` of the target function.
        summary: what it feeds and to which parser.
        max_len: the longest input libFuzzer generates for it.
    """

    name: str
    entry: str
    summary: str
    max_len: int = 4096

    @property
    def seed_dir(self) -> Path:
        """The directory of checked-in seed inputs."""
        return CORPUS_DIR / self.name


def _spec(name: str, module: str, summary: str, max_len: int = 4096) -> TargetSpec:
    return TargetSpec(name, f"fuzz.{module}:fuzz_{name}", summary, max_len)


TARGETS: dict[str, TargetSpec] = {
    spec.name: spec
    for spec in (
        _spec("varint", "_wire", "unsigned varint decoding (p2pstack.varint)"),
        _spec("lp", "_wire", "length-prefixed message decoder (p2pstack.framing.LpDecoder)"),
        _spec("multistream", "_wire", "multistream-select message codec, dialer and listener"),
        _spec("yamux_frame", "_wire", "yamux 12-byte header decoding"),
        _spec("yamux_core", "_wire", "yamux connection core fed the bytes of a peer"),
        _spec("mplex_frame", "_wire", "mplex message framing (two varints and a payload)"),
        _spec("mplex_core", "_wire", "mplex connection core fed the bytes of a peer"),
        _spec("noise_frames", "_noise", "Noise length framing and transport decryption", 16384),
        _spec("noise_payload", "_noise", "Noise handshake payload protobuf decoding"),
        _spec("noise_handshake", "_noise", "Noise XX handshake messages, raw and encrypted"),
        _spec("plaintext", "_identity", "plaintext/2.0.0 Exchange read by the real driver"),
        _spec("identify", "_identity", "identify stream decoding and re-encoding", 16384),
        _spec("keys", "_identity", "public/private key protobufs and peer IDs"),
        _spec("envelope", "_identity", "signed envelopes holding peer records"),
        _spec("peer_record", "_identity", "peer record protobuf decoding"),
        _spec("tls_certificate", "_identity", "libp2p TLS certificate (X.509 + SignedKey)"),
        _spec("kad_message", "_kad", "Kademlia DHT Message protobuf decoding and re-encoding"),
        _spec("kad_stream", "_kad", "Kademlia DHT length-prefixed stream decoder"),
        _spec("kad_lookup", "_kad", "Kademlia closest-peers lookup driven by arbitrary events"),
        _spec("rendezvous_message", "_rendezvous", "rendezvous Message decoding and its records"),
        _spec("rendezvous_point", "_rendezvous", "rendezvous point registry fed peers' requests"),
        _spec("swim_message", "_swim", "SWIM membership Message decoding and re-encoding"),
        _spec("swim_core", "_swim", "SWIM membership core fed arbitrary messages and time"),
        _spec("mdns_message", "_mdns", "mDNS datagrams: parse_message and MdnsCore", 9001),
        _spec(
            "pubsub_rpc",
            "_pubsub",
            "pubsub RPCs, signing, floodsub and gossipsub cores, queue",
        ),
        _spec("dcutr_message", "_dcutr", "DCUtR HolePunch decoding and re-encoding"),
        _spec("dcutr_core", "_dcutr", "DCUtR initiator and responder cores fed a peer's bytes"),
        _spec("dnsaddr_answer", "_discovery", "DNS TXT answers to a _dnsaddr. query", 4200),
        _spec("relay_message", "_relay", "circuit relay v2 hop/stop messages and vouchers"),
        _spec("relay_core", "_relay", "circuit relay v2 reservation and circuit tables"),
        _spec("relay_client", "_relay_client", "circuit relay v2 hop answers and stop requests"),
        _spec("p2pd_reply", "_p2pd", "p2pd control replies: Response, DHTResponse, PSMessage"),
        _spec("autonat_v1", "_autonat", "AutoNAT v1 Message decoding and address selection"),
        _spec("autonat_v2", "_autonat", "AutoNAT v2 Message, DialBack decoding, selection"),
        _spec("p2pd_request", "_daemon", "daemon control Request parsing and validation"),
        _spec("p2pd_stream", "_daemon", "daemon control connection request decoder, in chunks"),
    )
}

#: Targets that exist to prove the runner reports crashes; never part of "all targets".
SELF_TESTS: dict[str, TargetSpec] = {
    "selftest_crash": TargetSpec(
        "selftest_crash",
        "fuzz._selftest:fuzz_selftest_crash",
        "crashes on any input that starts with b'!' (checks that crashes are reported)",
    ),
}


def load(name: str) -> Callable[[bytes], None]:
    """Import and return the function of the target called ``name``.

    Raises:
        KeyError: no target has that name.
    """
    spec = TARGETS[name] if name in TARGETS else SELF_TESTS[name]
    module_name, function = spec.entry.split(":")
    target: Callable[[bytes], None] = getattr(importlib.import_module(module_name), function)
    return target
