"""p2pd's command-line flags, parsed the way Go's ``flag`` package does: ``-flag`` or ``--flag``,
``-flag=value`` and ``-flag value``; a boolean is ``-flag`` or ``-flag=true|false`` (never
``-flag false``); parsing stops at ``--`` or the first argument that is not a flag. Imports only
the standard library, so that a bad flag is reported before the network stack loads."""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

__all__ = [
    "BOOL_FLAGS",
    "USAGE",
    "DaemonOptions",
    "FlagError",
    "HelpRequested",
    "parse_duration",
    "parse_flags",
]

DEFAULT_LISTEN = "/unix/tmp/p2pd.sock"

#: Boolean flags and their defaults.
BOOL_FLAGS: dict[str, bool] = {
    "noListenAddrs": False,
    "dht": False,
    "dhtServer": False,
    "dhtClient": False,
    "pubsub": False,
    "relay": True,
    "noise": True,
    "tls": True,
    "plaintext": False,
    "b": False,
    "q": False,
    "connManager": False,
}
#: Flags that take a value, and their defaults.
VALUE_FLAGS: dict[str, str] = {
    "listen": DEFAULT_LISTEN,
    "hostAddrs": "",
    "id": "",
    "pubsubRouter": "gossipsub",
    "muxer": "",
    "security": "",
    "bootstrapPeers": "",
    "connLo": "256",
    "connHi": "512",
    "connGrace": "120s",
}

USAGE = """usage: p2pstack daemon [flags]   (p2pd-compatible; -flag=value or -flag value)
  -listen MA          control socket: /unix/PATH or /ip4/127.0.0.1/tcp/N
                      (default /unix/tmp/p2pd.sock)
  -hostAddrs MAS      comma-separated listen addresses (default /ip4/127.0.0.1/tcp/0)
  -noListenAddrs      do not listen for peers
  -id FILE            private key file (protobuf PrivateKey: Ed25519, RSA, secp256k1, ECDSA)
  -dht | -dhtServer | -dhtClient   run the Kademlia DHT (server or client mode)
  -pubsub             run pubsub;  -pubsubRouter gossipsub|floodsub (default gossipsub)
  -relay              relay for other peers (circuit relay v2 hop; default true)
  -noise -tls -plaintext   security channels (default noise and tls; naming one picks it)
  -security NAME      shorthand: only this security channel
  -muxer yamux|mplex  only this stream muxer (default both, yamux first)
  -b                  connect to -bootstrapPeers (comma-separated /.../p2p/ID) at start
  -connManager        trim connections: -connLo N (256), -connHi N (512), -connGrace D (120s)
  -q                  print nothing at start"""


class FlagError(Exception):
    """A bad command line: the message is one line; the exit status is 2."""


class HelpRequested(Exception):
    """``-h`` / ``-help``: print :data:`USAGE`."""


@attrs.frozen(kw_only=True)
class DaemonOptions:
    """The parsed flags.

    Attributes:
        listen: the control socket's multiaddr.
        host_addrs: the node's listen addresses (empty with ``-noListenAddrs``).
        key_file: the ``-id`` file, or None for a fresh Ed25519 key.
        dht: ``"server"``, ``"client"`` or None.
        pubsub: the router name, or None.
        relay: the ``-relay`` switch.
        security: security channel names in preference order.
        muxers: muxer names in preference order.
        bootstrap: peers to connect to at start (``-b``).
        quiet: ``-q``.
        conn_manager: ``(low, high, grace seconds)`` with ``-connManager``, else None.
    """

    listen: str
    host_addrs: tuple[str, ...]
    key_file: str | None
    dht: str | None
    pubsub: str | None
    relay: bool
    security: tuple[str, ...]
    muxers: tuple[str, ...]
    bootstrap: tuple[str, ...]
    quiet: bool
    conn_manager: tuple[int, int, float] | None = None


def _bool(name: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise FlagError(f'invalid boolean value "{text}" for -{name}')


def _scan(argv: Sequence[str]) -> tuple[dict[str, bool], dict[str, str], set[str]]:
    bools: dict[str, bool] = {}
    values: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            if arg != "--":
                raise FlagError(f"unexpected argument {arg!r} (flags only)")
            break
        name, eq, value = arg.lstrip("-").partition("=")
        if arg.startswith("---") or not name:
            raise FlagError(f"bad flag syntax: {arg}")
        if name in ("h", "help"):
            raise HelpRequested
        if name in BOOL_FLAGS:
            bools[name] = _bool(name, value) if eq else True
        elif name in VALUE_FLAGS:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise FlagError(f"flag needs an argument: -{name}")
                value = argv[i]
            values[name] = value
        else:
            raise FlagError(f"flag provided but not defined: -{name}")
        i += 1
    return bools, values, set(bools)


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(name: str, text: str) -> float:
    """A Go duration (``90s``, ``1m30s``, ``250ms``; a bare ``0``) in seconds.

    Raises:
        FlagError: not a duration.
    """
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION.match(text, pos)
        if match is None:
            raise FlagError(f'invalid value "{text}" for -{name}: not a duration (e.g. 20s, 1m)')
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text:
        raise FlagError(f"invalid value for -{name}: empty duration")
    return total


def _count(name: str, text: str) -> int:
    if not text.isdigit():
        raise FlagError(f'invalid value "{text}" for -{name}: not a count')
    return int(text)


def _conn_manager(values: dict[str, str]) -> tuple[int, int, float]:
    low = _count("connLo", values.get("connLo", VALUE_FLAGS["connLo"]))
    high = _count("connHi", values.get("connHi", VALUE_FLAGS["connHi"]))
    if low > high:
        raise FlagError(f"-connLo {low} is above -connHi {high}")
    return low, high, parse_duration("connGrace", values.get("connGrace", VALUE_FLAGS["connGrace"]))


def _security(bools: dict[str, bool], shorthand: str) -> tuple[str, ...]:
    names = ("noise", "tls", "plaintext")
    if shorthand:
        if shorthand not in names:
            raise FlagError(f"-security: unknown channel {shorthand!r} (noise, tls, plaintext)")
        return (shorthand,)
    explicit_on = [n for n in names if bools.get(n) is True]
    if explicit_on:  # naming a channel picks it (js-libp2p's runner passes exactly one)
        return tuple(explicit_on)
    chosen = tuple(n for n in names if bools.get(n, BOOL_FLAGS[n]))
    if not chosen:
        raise FlagError("every security channel is switched off")
    return chosen


def parse_flags(argv: Sequence[str]) -> DaemonOptions:
    """Parse p2pd's flags.

    Raises:
        FlagError: an unknown flag, a missing or bad value.
        HelpRequested: ``-h`` or ``-help``.
    """
    bools, values, _ = _scan(argv)

    def flag(name: str) -> bool:
        return bools.get(name, BOOL_FLAGS[name])

    def value(name: str) -> str:
        return values.get(name, VALUE_FLAGS[name])

    router = value("pubsubRouter")
    if router not in ("gossipsub", "floodsub"):
        raise FlagError(f"-pubsubRouter: unknown router {router!r} (gossipsub, floodsub)")
    muxer = value("muxer")
    if muxer not in ("", "yamux", "mplex"):
        raise FlagError(f"-muxer: unknown muxer {muxer!r} (yamux, mplex)")
    dht = None
    if flag("dhtClient"):
        dht = "client"
    if flag("dht") or flag("dhtServer"):
        dht = "server"
    hosts = tuple(a for a in value("hostAddrs").split(",") if a.strip())
    if flag("noListenAddrs"):
        hosts = ()
    elif not hosts:
        hosts = ("/ip4/127.0.0.1/tcp/0",)
    bootstrap = tuple(a for a in value("bootstrapPeers").split(",") if a.strip())
    return DaemonOptions(
        listen=value("listen"),
        host_addrs=tuple(a.strip() for a in hosts),
        key_file=value("id") or None,
        dht=dht,
        pubsub=router if flag("pubsub") else None,
        relay=flag("relay"),
        security=_security(bools, value("security")),
        muxers=(muxer,) if muxer else ("yamux", "mplex"),
        bootstrap=tuple(a.strip() for a in bootstrap) if flag("b") else (),
        quiet=flag("q"),
        conn_manager=_conn_manager(values) if flag("connManager") else None,
    )
