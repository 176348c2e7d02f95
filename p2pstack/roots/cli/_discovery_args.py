"""Discovery options of ``p2pstack node`` (issue 13; docs/discovery.md, "The command line").
Standard library only: parsing must not load the network stack (see ``_registry``).

``--bootstrap`` itself is declared with the DHT options (``_dht_args``) and shared. A new
discovery source adds its flag in ``add_node_discovery_arguments``, its ``dest`` to
``DISCOVERY_OPTIONS`` and a builder to ``_discovery.SOURCE_BUILDERS``.
"""

from __future__ import annotations

import argparse

from p2pstack.roots.cli._dht_args import _positive_float

__all__ = [
    "DISCOVERY_OPTIONS",
    "RANDOM_WALK_INTERVAL",
    "add_node_discovery_arguments",
    "node_wants_discovery",
    "parse_nameserver",
]

#: ``argparse`` destinations whose presence turns the discovery service on.
DISCOVERY_OPTIONS: list[str] = ["bootstrap", "rendezvous", "mdns"]
#: Default seconds between two random DHT lookups while discovery and the DHT both run.
RANDOM_WALK_INTERVAL = 60.0


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def parse_nameserver(text: str) -> tuple[str, int]:
    """Parse ``--dns-server``: ``HOST``, ``HOST:PORT`` or ``[IPv6]:PORT`` (port 53 if none).

    Raises:
        argparse.ArgumentTypeError: not of that form, or the port is not 1-65535.
    """
    host, port = text, "53"
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise argparse.ArgumentTypeError(f"invalid DNS server {text!r} (use [IPv6]:PORT)")
        port = rest[1:] or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"invalid DNS server {text!r} (use HOST:PORT)")
    return host, int(port)


def add_node_discovery_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--min-connections``, ``--random-walk`` and ``--dns-server`` to ``node``.

    Args:
        p: the ``node`` subparser.
    """
    p.add_argument(
        "--min-connections",
        type=_count,
        default=None,
        metavar="N",
        help="with discovery on: dial discovered peers while fewer than N are connected "
        "(default: 8); bootstrap peers are dialed at start whatever N",
    )
    p.add_argument(
        "--random-walk",
        type=_positive_float,
        default=RANDOM_WALK_INTERVAL,
        metavar="SECONDS",
        help="with discovery and the DHT on: seconds between random DHT lookups whose peers "
        f"are discovered with source 'dht' (default: {RANDOM_WALK_INTERVAL:g})",
    )
    p.add_argument(
        "--dns-server",
        type=parse_nameserver,
        default=None,
        metavar="HOST:PORT",
        help="the DNS server that resolves /dnsaddr/ bootstrap entries (default: the first "
        "nameserver of /etc/resolv.conf)",
    )


def node_wants_discovery(args: argparse.Namespace) -> bool:
    """Whether a ``node`` command runs the discovery service (a discovery source was asked
    for: ``--bootstrap``, and the options named in ``DISCOVERY_OPTIONS``)."""
    return any(getattr(args, name, None) for name in DISCOVERY_OPTIONS)
