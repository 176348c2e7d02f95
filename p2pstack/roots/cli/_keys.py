"""``p2pstack key generate`` and ``p2pstack id``."""

from __future__ import annotations

import argparse

from p2pstack.identity import Identity, KeyType
from p2pstack.roots.cli._common import UserError, load_identity

__all__ = ["run_id", "run_key"]


def run_key(args: argparse.Namespace) -> int:
    """``key generate PATH``: write a new key file (mode 0600) and print its peer ID.

    Args:
        args: ``path``, ``type``, ``force``.

    Returns:
        0.

    Raises:
        UserError: the file exists (without ``--force``) or cannot be written.
    """
    identity = Identity.generate(KeyType[args.type.upper()])
    try:
        identity.save(args.path, overwrite=args.force)
    except FileExistsError:
        raise UserError(
            f"key file already exists: {args.path} (use --force to overwrite)"
        ) from None
    except OSError as exc:
        # Name the file asked for, not the temporary file the key is first written to.
        reason = (exc.strerror or str(exc)).lower()
        raise UserError(f"cannot write key file {args.path}: {reason}") from None
    print(identity.peer_id)
    return 0


def run_id(args: argparse.Namespace) -> int:
    """``id [--key PATH]``: print the peer ID of a key file (or of a fresh key).

    Args:
        args: ``key``.

    Returns:
        0.

    Raises:
        UserError: the key file is accessible by others.
        OSError: the file cannot be read.
        p2pstack.errors.IdentityError: the file does not hold a key.
    """
    print(load_identity(args.key).peer_id)
    return 0
