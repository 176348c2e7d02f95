"""Argument parsing for the ``p2pstack`` command line."""

from __future__ import annotations

import argparse
import re

from p2pstack.roots.cli._sim import add_sim_parser
from p2pstack.roots.defaults import MUXERS, SECURITY

__all__ = ["build_parser", "parse_size"]

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(text: str) -> int:
    """Parse a byte count: ``1048576``, ``64KiB``, ``10MB``, ``1GiB``, ``5M`` (= MiB).

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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _stack_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--security",
        action="append",
        choices=sorted(SECURITY),
        metavar="NAME",
        help="security channel: noise (default) or plaintext; repeat to give a preference order",
    )
    p.add_argument(
        "--muxer",
        action="append",
        choices=sorted(MUXERS),
        metavar="NAME",
        help="stream muxer: yamux or mplex (default: yamux, then mplex); repeat for an order",
    )
    p.add_argument("--key", metavar="PATH", help="key file (default: a fresh, ephemeral key)")
    p.add_argument("--json", action="store_true", help="print one JSON object per line")
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="give up after this long (default: 30)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2pstack",
        description="A libp2p node and tools: keys, a node that serves ping/identify/perf, "
        "and clients for them.",
    )
    parser.add_argument("--verbose", "-v", action="count", default=0, help="log more (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    key = sub.add_parser("key", help="manage key files")
    key_sub = key.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    gen = key_sub.add_parser("generate", help="create a new key file (owner-only permissions)")
    gen.add_argument("path", metavar="PATH")
    gen.add_argument(
        "--type",
        default="ed25519",
        choices=["ed25519", "secp256k1", "ecdsa", "rsa"],
        help="key type (default: ed25519)",
    )
    gen.add_argument("--force", action="store_true", help="overwrite an existing file")

    ident = sub.add_parser("id", help="print the peer ID of a key file")
    ident.add_argument("--key", metavar="PATH", help="key file (default: a fresh, ephemeral key)")

    node = sub.add_parser("node", help="run a node serving ping, identify and perf")
    _stack_options(node)
    node.add_argument(
        "--listen",
        action="append",
        metavar="MULTIADDR",
        help="address to listen on, repeatable (default: /ip4/127.0.0.1/tcp/0)",
    )

    ping = sub.add_parser("ping", help="ping a peer")
    ping.add_argument("addr", metavar="MULTIADDR", help="peer address ending in /p2p/<peer-id>")
    ping.add_argument("--count", "-c", type=_positive_int, default=5, help="pings (default: 5)")
    _stack_options(ping)

    identify = sub.add_parser("identify", help="ask a peer who it is")
    identify.add_argument("addr", metavar="MULTIADDR")
    _stack_options(identify)

    perf = sub.add_parser("perf", help="measure throughput to a peer with /perf/1.0.0")
    perf.add_argument("addr", metavar="MULTIADDR")
    perf.add_argument("--upload", type=parse_size, required=True, metavar="BYTES")
    perf.add_argument("--download", type=parse_size, required=True, metavar="BYTES")
    _stack_options(perf)
    add_sim_parser(sub)
    return parser
