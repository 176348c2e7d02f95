"""Arguments of ``p2pstack node --relay-service`` (issue 14; docs/nat.md): act as a
circuit relay v2 relay, with its main limits. Standard library only: parsing must not load the
network stack (see ``_registry``)."""

from __future__ import annotations

import argparse

__all__ = ["add_node_relay_service_arguments"]


def _positive(kind: type[int] | type[float]) -> object:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value

    return parse


def add_node_relay_service_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--relay-service`` and its limit options to ``node``.

    Args:
        p: the ``node`` subparser.
    """
    p.add_argument(
        "--relay-service",
        action="store_true",
        help="act as a circuit relay v2 relay (/libp2p/circuit/relay/0.2.0/hop): peers reserve "
        "a slot here and others connect to them through it; prints reservation and circuit "
        "events",
    )
    p.add_argument(
        "--relay-limit-duration",
        type=_positive(int),  # type: ignore[arg-type]  # argparse takes any callable
        default=None,
        metavar="SECONDS",
        help="with --relay-service: most seconds a circuit stays open (default: 120)",
    )
    p.add_argument(
        "--relay-limit-data",
        type=_positive(int),  # type: ignore[arg-type]  # argparse takes any callable
        default=None,
        metavar="BYTES",
        help="with --relay-service: most bytes a circuit carries each way (default: 131072)",
    )
    p.add_argument(
        "--relay-max-reservations",
        type=_positive(int),  # type: ignore[arg-type]  # argparse takes any callable
        default=None,
        metavar="N",
        help="with --relay-service: most reservations held at once (default: 128)",
    )
    p.add_argument(
        "--relay-max-circuits",
        type=_positive(int),  # type: ignore[arg-type]  # argparse takes any callable
        default=None,
        metavar="N",
        help="with --relay-service: most circuits open at once (default: 16)",
    )
