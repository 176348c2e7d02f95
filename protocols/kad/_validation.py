"""Record validators and selectors by key namespace, as the DHT spec requires of every PUT_VALUE and
GET_VALUE (https://github.com/libp2p/specs/blob/master/kad-dht/README.md#entry-validation).

A record key is ``b"/" + namespace + b"/" + rest``; the namespace picks the validator. Built in:
``/pk/`` (a public key stored under its peer ID) and ``/ipns/`` (signed IPNS V2 names,
https://specs.ipfs.tech/ipns/ipns-record/). A namespace registered as *passthrough* accepts any
value without checks (js-libp2p's test option of that name). A key in no known namespace is
rejected, as go and js do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from p2pstack.errors import InvalidKeyError, InvalidPeerIdError
from p2pstack.identity import PeerId, PublicKey
from protocols.kad._ipns import IpnsRecord, ipns_select_key, parse_ipns_record, verify_ipns_record
from protocols.kad._types import RecordValidationError

__all__ = [
    "IpnsValidator",
    "PassthroughValidator",
    "PublicKeyValidator",
    "Validator",
    "Validators",
]


class Validator(Protocol):
    """Checks the values of one namespace and picks the best of several.

    Both methods are pure and synchronous: they never block and keep no state between calls.
    """

    def validate(self, key: bytes, value: bytes) -> None:
        """Accept ``value`` as the record stored under ``key``, or raise.

        Raises:
            RecordValidationError: the value is malformed, unsigned, expired, or does not belong
                under ``key``.
        """
        ...

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        """The index in ``values`` of the best record for ``key`` (the first of equals).

        Raises:
            RecordValidationError: ``values`` is empty.
        """
        ...


def _require_values(values: Sequence[bytes]) -> None:
    if not values:
        raise RecordValidationError("select needs at least one value")


def _split_key(key: bytes) -> tuple[str, bytes]:
    """Split ``b"/ns/rest"`` into ``("ns", b"rest")``.

    Raises:
        RecordValidationError: the key has no ``/namespace/`` prefix.
    """
    if not isinstance(key, bytes) or not key.startswith(b"/"):
        raise RecordValidationError("record key does not start with '/'")
    end = key.find(b"/", 1)
    if end <= 1:
        raise RecordValidationError("record key has no '/namespace/' prefix")
    try:
        namespace = key[1:end].decode("ascii")
    except UnicodeDecodeError as exc:
        raise RecordValidationError("record key namespace is not ASCII") from exc
    return namespace, key[end + 1 :]


def _peer_id_of(rest: bytes, namespace: str) -> PeerId:
    try:
        return PeerId.from_bytes(rest)
    except InvalidPeerIdError as exc:
        raise RecordValidationError(f"/{namespace}/ key does not hold a peer ID: {exc}") from exc


class PublicKeyValidator:
    """``/pk/<peer ID bytes>``: the value is a protobuf ``PublicKey`` whose peer ID is the key's.

    Every valid value under one key is the same key, so :meth:`select` picks the first.
    """

    def validate(self, key: bytes, value: bytes) -> None:
        """Check that ``value`` is the public key of the peer named by ``key``.

        Raises:
            RecordValidationError: wrong namespace, bad peer ID, bad key bytes, or the key's peer
                ID differs from the one in ``key``.
        """
        namespace, rest = _split_key(key)
        if namespace != "pk":
            raise RecordValidationError("not a /pk/ key")
        peer = _peer_id_of(rest, namespace)
        try:
            public_key = PublicKey.from_protobuf(value)
        except InvalidKeyError as exc:
            raise RecordValidationError(f"/pk/ value is not a public key: {exc}") from exc
        if not peer.matches(public_key):
            raise RecordValidationError("/pk/ value is the key of another peer")

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        """Pick the first value (valid ones are all identical).

        Raises:
            RecordValidationError: ``values`` is empty.
        """
        _require_values(values)
        return 0


class IpnsValidator:
    """``/ipns/<peer ID bytes>``: a signed IPNS V2 record of that name, not past its EOL.

    Args:
        clock: the wall clock, in UNIX seconds, that EOL validity is checked against (IPNS
            validity is an absolute UTC time, so this is not the monotonic clock of the cores).
            The simulator passes its own.
    """

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self._clock = clock

    def _check(self, key: bytes, value: bytes) -> IpnsRecord:
        namespace, rest = _split_key(key)
        if namespace != "ipns":
            raise RecordValidationError("not an /ipns/ key")
        name = _peer_id_of(rest, namespace)
        record = parse_ipns_record(value)
        verify_ipns_record(record, name, now=self._clock())
        return record

    def validate(self, key: bytes, value: bytes) -> None:
        """Check ``value`` as the IPNS record of the name in ``key`` (spec "Record Verification").

        Raises:
            RecordValidationError: oversized, malformed, badly signed, signed by a key other than
                the name's, V1 fields contradicting the signed CBOR, or expired.
        """
        self._check(key, value)

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        """Pick the record with the highest sequence, then the latest validity (EOL), then the
        larger ``data`` bytes (a deterministic tie-break, as go's). Values that do not parse
        rank below every value that does.

        Raises:
            RecordValidationError: ``values`` is empty.
        """
        _require_values(values)
        best_index = 0
        best: tuple[int, int, bytes] | None = None
        for index, value in enumerate(values):
            try:
                rank = ipns_select_key(parse_ipns_record(value))
            except RecordValidationError:
                continue
            if best is None or rank > best:
                best_index, best = index, rank
        return best_index


class PassthroughValidator:
    """Accepts any value and picks the first: for test namespaces only (no integrity at all)."""

    def validate(self, key: bytes, value: bytes) -> None:
        """Accept everything.

        Raises:
            RecordValidationError: never, except for a key without a ``/namespace/`` prefix.
        """
        _split_key(key)

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        """Pick the first value.

        Raises:
            RecordValidationError: ``values`` is empty.
        """
        _require_values(values)
        return 0


class Validators:
    """The namespace registry a DHT node validates every record with.

    Args:
        validators: extra or replacing validators by namespace name (without slashes); they
            override the built-in ``pk`` and ``ipns`` ones.
        passthrough: namespaces whose values are accepted unchecked (for tests).
        clock: the wall clock (UNIX seconds) of the built-in ``ipns`` validator's EOL check (a
            simulation passes its own).

    Raises:
        ValueError: a namespace name is empty or contains ``/``.
    """

    def __init__(
        self,
        validators: Mapping[str, Validator] | None = None,
        *,
        passthrough: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        table: dict[str, Validator] = {
            "pk": PublicKeyValidator(),
            "ipns": IpnsValidator(clock=clock),
        }
        for name in passthrough:
            table[name] = PassthroughValidator()
        table.update(validators or {})
        for name in table:
            if not name or "/" in name:
                raise ValueError(f"invalid namespace name {name!r}")
        self._table = table

    def namespace(self, key: bytes) -> str:
        """The namespace of ``key`` (``"pk"`` for ``b"/pk/..."``), known or not.

        Raises:
            RecordValidationError: the key has no ``/namespace/`` prefix.
        """
        return _split_key(key)[0]

    def namespaces(self) -> list[str]:
        """The registered namespace names, sorted."""
        return sorted(self._table)

    def validator(self, key: bytes) -> Validator:
        """The validator responsible for ``key``.

        Raises:
            RecordValidationError: malformed key or no validator for its namespace.
        """
        namespace = self.namespace(key)
        found = self._table.get(namespace)
        if found is None:
            raise RecordValidationError(f"no validator for namespace {namespace!r}")
        return found

    def validate(self, key: bytes, value: bytes) -> None:
        """Validate ``value`` under ``key`` with its namespace's validator.

        Raises:
            RecordValidationError: unknown namespace or the validator rejects the value.
        """
        self.validator(key).validate(key, value)

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        """The index of the best of ``values`` for ``key`` by its namespace's selector.

        Raises:
            RecordValidationError: unknown namespace or ``values`` empty.
        """
        return self.validator(key).select(key, values)
