"""Argument parsing for the ``p2pstack`` command line, and the built-in commands' registry
entries. Imports only the standard library (see ``_registry``)."""

from __future__ import annotations

import argparse
import re

from p2pstack.roots.cli._autonat_args import add_node_autonat_arguments
from p2pstack.roots.cli._dcutr_args import add_node_dcutr_arguments
from p2pstack.roots.cli._dht_args import (
    _positive_float,
    _positive_int,
    add_node_dht_arguments,
    configure_dht,
)
from p2pstack.roots.cli._discovery_args import add_node_discovery_arguments
from p2pstack.roots.cli._mdns import add_node_mdns_arguments
from p2pstack.roots.cli._membership_args import add_node_membership_arguments
from p2pstack.roots.cli._pubsub_args import add_node_pubsub_arguments, configure_pubsub
from p2pstack.roots.cli._registry import COMMANDS, Command, register
from p2pstack.roots.cli._relay_client_args import add_node_relay_arguments
from p2pstack.roots.cli._relay_service_args import add_node_relay_service_arguments
from p2pstack.roots.cli._rendezvous_args import add_node_rendezvous_arguments
from p2pstack.roots.cli._sim import add_sim_arguments

__all__ = ["MUXER_NAMES", "SECURITY_NAMES", "build_parser", "parse_size"]

#: The names of ``p2pstack.roots.defaults.SECURITY`` and ``MUXERS`` (kept equal by a test):
#: spelled out here so that parsing does not import the transports.
SECURITY_NAMES = ("noise", "plaintext", "tls")
MUXER_NAMES = ("yamux", "mplex")

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_CLI = "p2pstack.roots.cli"


def parse_size(text: str) -> int:
    """Parse a byte count: ``1048576``, ``64KiB``, ``10MB``, ``1GiB``, ``5M`` (= MiB).

    Args:
        text: the argument.

    Returns:
        The number of bytes.

    Raises:
        argparse.ArgumentTypeError: not a size.
    """
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (examples: 1048576, 64KiB, 10MB)")
    number, prefix, suffix = match.groups()
    base = 1000 if suffix.lower() == "b" else 1024
    multiplier: int = base ** _UNITS[prefix.lower()]
    return int(number) * multiplier


def _key_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--key",
        metavar="PATH",
        help="key file, readable by its owner only (default: a fresh, ephemeral key)",
    )


def _stack_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--security",
        action="append",
        choices=sorted(SECURITY_NAMES),
        metavar="NAME",
        help="security channel: noise (default), tls (TLS 1.3) or plaintext; repeat to give a "
        "preference order",
    )
    p.add_argument(
        "--muxer",
        action="append",
        choices=sorted(MUXER_NAMES),
        metavar="NAME",
        help="stream muxer: yamux or mplex (default: yamux, then mplex); repeat for an order",
    )
    _key_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON object per line")


def _client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("addr", metavar="MULTIADDR", help="peer address ending in /p2p/<peer-id>")
    _stack_options(p)
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="deadline of each step: the dial, the connection upgrade (security and muxer "
        "negotiation) and each request (default: 30)",
    )


def _configure_key(p: argparse.ArgumentParser) -> None:
    key_sub = p.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    gen = key_sub.add_parser("generate", help="create a new key file (owner-only permissions)")
    gen.add_argument("path", metavar="PATH")
    gen.add_argument(
        "--type",
        default="ed25519",
        choices=["ed25519", "secp256k1", "ecdsa", "rsa"],
        help="key type (default: ed25519)",
    )
    gen.add_argument("--force", action="store_true", help="overwrite an existing file")


def _configure_node(p: argparse.ArgumentParser) -> None:
    _stack_options(p)
    p.add_argument(
        "--listen",
        action="append",
        metavar="MULTIADDR",
        help=(
            "address to listen on, repeatable: /ip4/../tcp/N or /ip4/../udp/N/quic-v1 "
            "(default: /ip4/127.0.0.1/tcp/0)"
        ),
    )
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="per-connection deadline: each inbound or outbound connection must finish its "
        "upgrade (security and muxer negotiation) within it, and each new stream its protocol "
        "negotiation; the upgrade's earlier stages (first byte, security handshake) keep their "
        "shorter deadlines, capped at it (default: the library's deadlines)",
    )
    p.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics (connections, streams, memory, limits hit) at "
        "http://HOST:PORT/metrics; port 0 picks a free one, reported in the listening event "
        "(needs the 'metrics' extra: pip install 'p2pstack[metrics]')",
    )
    add_node_dht_arguments(p)
    add_node_pubsub_arguments(p)
    add_node_rendezvous_arguments(p)
    add_node_discovery_arguments(p)
    add_node_mdns_arguments(p)
    add_node_membership_arguments(p)
    add_node_relay_service_arguments(p)
    add_node_relay_arguments(p)
    add_node_autonat_arguments(p)
    add_node_dcutr_arguments(p)


def _configure_ping(p: argparse.ArgumentParser) -> None:
    _client_options(p)
    p.add_argument("--count", "-c", type=_positive_int, default=5, help="pings (default: 5)")


def _configure_perf(p: argparse.ArgumentParser) -> None:
    _client_options(p)
    p.add_argument("--upload", type=parse_size, required=True, metavar="BYTES")
    p.add_argument("--download", type=parse_size, required=True, metavar="BYTES")


def _configure_daemon(p: argparse.ArgumentParser) -> None:
    # p2pd's Go-style flags (-flag=value) are parsed by the daemon itself (``main`` hands them
    # over untouched); this only documents them in ``p2pstack --help``.
    p.add_argument("flags", nargs=argparse.REMAINDER, help="p2pd flags, see p2pstack daemon -h")


for _command in (
    Command("key", "manage key files", _configure_key, f"{_CLI}._keys:run_key"),
    Command("id", "print the peer ID of a key file", _key_option, f"{_CLI}._keys:run_id"),
    Command(
        "node",
        "run a node serving ping, identify and perf (and the DHT with --dht, pubsub with --pubsub)",
        _configure_node,
        f"{_CLI}._node:run",
    ),
    Command("ping", "ping a peer", _configure_ping, f"{_CLI}._client:run_ping"),
    Command("identify", "ask a peer who it is", _client_options, f"{_CLI}._client:run_identify"),
    Command(
        "perf",
        "measure throughput to a peer with /perf/1.0.0",
        _configure_perf,
        f"{_CLI}._client:run_perf",
    ),
    Command(
        "dht",
        "use the Kademlia DHT: put, get, provide, find-providers, find-peer",
        configure_dht,
        f"{_CLI}._dht:run_dht",
    ),
    Command(
        "pubsub",
        "publish/subscribe: sub (print a topic's messages), pub (publish one)",
        configure_pubsub,
        f"{_CLI}._pubsub:run_pubsub",
    ),
    Command(
        "daemon",
        "run a p2pd-compatible daemon (go-libp2p-daemon's flags: p2pstack daemon -h)",
        _configure_daemon,
        "p2pstack.roots.daemon._main:run",
    ),
    Command(
        "sim",
        "run a deterministic network simulation scenario (TOML)",
        add_sim_arguments,
        f"{_CLI}._sim:run_sim",
    ),
):
    register(_command)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every registered command.

    Returns:
        The top-level parser; ``args.command`` names the chosen command.
    """
    parser = argparse.ArgumentParser(
        prog="p2pstack",
        description="A libp2p node and tools: keys, a node that serves ping/identify/perf, "
        "the Kademlia DHT and pubsub, clients for them, and network simulation.",
    )
    parser.add_argument("--verbose", "-v", action="count", default=0, help="log more (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        command.configure(sub.add_parser(command.name, help=command.help))
    return parser
