"""The rendezvous point's sans-IO registry: TTLs, namespaces, cookies, limits, forged records."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pstack.errors import RemoteProtocolError
from p2pstack.identity import Identity, PeerId
from protocols.discovery.rendezvous import (
    Discover,
    DiscoverResponse,
    Register,
    RegisterResponse,
    Registry,
    RegistryConfig,
    Status,
    encode_message,
    encode_peer_info,
    open_record,
)
from tests.protocols.discovery.rendezvous.records import ADDR, register, signed_record

NONCE = b"\x01" * 8
IDS = [Identity.generate() for _ in range(6)]


def make(**kwargs: object) -> Registry:
    return Registry(RegistryConfig(**kwargs), nonce=NONCE)  # type: ignore[arg-type]  # the test's options pass through **kwargs


def peers_of(response: DiscoverResponse) -> list[PeerId]:
    return [open_record(r.record, allow_unsigned=True).peer_id for r in response.registrations]


def test_register_then_discover() -> None:
    reg = make()
    assert reg.register(IDS[0].peer_id, register(IDS[0]), 0.0) == RegisterResponse(
        status=Status.OK, ttl=7200
    )
    out = reg.discover(IDS[1].peer_id, Discover(ns="app"), 100.0)
    assert out.status == Status.OK and peers_of(out) == [IDS[0].peer_id]
    assert out.registrations[0].ttl == 7100 and out.registrations[0].ns == "app"
    assert reg.discover(IDS[1].peer_id, Discover(ns="other"), 100.0).registrations == ()


def test_absent_ttl_means_the_default() -> None:
    reg = make()
    response = reg.register(IDS[0].peer_id, register(IDS[0], ttl=None), 0.0)
    assert response.ttl == 2 * 3600


@pytest.mark.parametrize("ttl", [0, 7199, 72 * 3600 + 1, 2**64 - 1])
def test_inadmissible_ttls(ttl: int) -> None:
    response = make().register(IDS[0].peer_id, register(IDS[0], ttl=ttl), 0.0)
    assert response.status == Status.E_INVALID_TTL


@pytest.mark.parametrize("ns", ["", "x" * 256, "é" * 128])
def test_invalid_namespaces(ns: str) -> None:
    reg = make()
    assert reg.register(IDS[0].peer_id, register(IDS[0], ns=ns), 0.0).status == (
        Status.E_INVALID_NAMESPACE
    )
    if ns:
        assert reg.discover(IDS[0].peer_id, Discover(ns=ns), 0.0).status == (
            Status.E_INVALID_NAMESPACE
        )


def test_longest_namespace_is_accepted() -> None:
    assert make().register(IDS[0].peer_id, register(IDS[0], ns="x" * 255), 0).status == Status.OK


def test_expiry_runs_at_the_deadline() -> None:
    reg = make()
    reg.register(IDS[0].peer_id, register(IDS[0], ttl=7200), 0.0)
    reg.register(IDS[1].peer_id, register(IDS[1], ttl=9000), 10.0)
    assert reg.next_deadline() == 7200.0
    reg.handle_timer(7199.0)
    assert reg.statistics().registrations == 2
    reg.handle_timer(7200.0)
    assert [r.peer for r in reg.registrations()] == [IDS[1].peer_id]
    assert reg.next_deadline() == 9010.0
    reg.handle_timer(9010.0)
    assert reg.next_deadline() is None and reg.statistics().expired == 2


def test_refresh_supersedes_and_moves_the_deadline() -> None:
    reg = make()
    reg.register(IDS[0].peer_id, register(IDS[0], ttl=7200), 0.0)
    reg.register(IDS[0].peer_id, register(IDS[0], ttl=8000), 100.0)
    assert reg.statistics().registrations == 1
    assert reg.next_deadline() == 8100.0
    reg.handle_timer(7200.0)
    assert reg.statistics().registrations == 1


def test_unregister() -> None:
    reg = make()
    reg.register(IDS[0].peer_id, register(IDS[0]), 0.0)
    reg.unregister(IDS[1].peer_id, "app")  # someone else's: a no-op
    reg.unregister(IDS[0].peer_id, "nothing-here")
    assert reg.statistics().registrations == 1
    reg.unregister(IDS[0].peer_id, "app")
    assert reg.statistics().registrations == 0 and reg.next_deadline() is None


def test_cookie_returns_only_newer_registrations() -> None:
    reg = make()
    reg.register(IDS[0].peer_id, register(IDS[0]), 0.0)
    reg.register(IDS[1].peer_id, register(IDS[1]), 0.0)
    first = reg.discover(IDS[5].peer_id, Discover(ns="app"), 1.0)
    assert peers_of(first) == [IDS[0].peer_id, IDS[1].peer_id]
    again = reg.discover(IDS[5].peer_id, Discover(ns="app", cookie=first.cookie), 1.0)
    assert again.status == Status.OK and again.registrations == ()
    reg.register(IDS[2].peer_id, register(IDS[2]), 2.0)
    reg.register(IDS[0].peer_id, register(IDS[0]), 2.0)  # a refresh counts as new
    later = reg.discover(IDS[5].peer_id, Discover(ns="app", cookie=again.cookie), 3.0)
    assert peers_of(later) == [IDS[2].peer_id, IDS[0].peer_id]


def test_pagination_with_limit() -> None:
    reg = make()
    for ident in IDS[:5]:
        reg.register(ident.peer_id, register(ident), 0.0)
    seen: list[PeerId] = []
    cookie = b""
    sizes = []
    for _ in range(4):
        page = reg.discover(IDS[5].peer_id, Discover(ns="app", limit=2, cookie=cookie), 1.0)
        sizes.append(len(page.registrations))
        seen += peers_of(page)
        cookie = page.cookie
    assert sizes == [2, 2, 1, 0]
    assert seen == [i.peer_id for i in IDS[:5]]


def test_empty_namespace_discovers_all() -> None:
    reg = make()
    reg.register(IDS[0].peer_id, register(IDS[0], ns="a"), 0.0)
    reg.register(IDS[1].peer_id, register(IDS[1], ns="b"), 0.0)
    out = reg.discover(IDS[2].peer_id, Discover(), 0.0)
    assert [r.ns for r in out.registrations] == ["a", "b"]


def test_bad_cookies_are_rejected() -> None:
    reg = make()
    reg.register(IDS[0].peer_id, register(IDS[0]), 0.0)
    good = reg.discover(IDS[1].peer_id, Discover(ns="app"), 0.0).cookie
    other_point = Registry(nonce=b"\x02" * 8)
    other_point.register(IDS[0].peer_id, register(IDS[0]), 0.0)
    foreign = other_point.discover(IDS[1].peer_id, Discover(ns="app"), 0.0).cookie
    future = good[:-8] + (99).to_bytes(8, "big")
    for cookie, ns in [(good[:-1], "app"), (good, "other"), (foreign, "app"), (future, "app")]:
        out = reg.discover(IDS[1].peer_id, Discover(ns=ns, cookie=cookie), 0.0)
        assert out.status == Status.E_INVALID_COOKIE, (cookie, ns)


def test_a_peer_may_register_only_itself() -> None:
    reg = make()
    response = reg.register(IDS[1].peer_id, register(IDS[0]), 0.0)
    assert response.status == Status.E_NOT_AUTHORIZED
    info = Register(ns="app", record=encode_peer_info(IDS[0].peer_id, (ADDR,)), ttl=7200)
    assert reg.register(IDS[1].peer_id, info, 0.0).status == Status.E_NOT_AUTHORIZED
    assert reg.statistics().registrations == 0


@pytest.mark.parametrize("mangle", ["signature", "garbage", "empty"])
def test_forged_records_are_rejected(mangle: str) -> None:
    data = bytearray(signed_record(IDS[0]))
    if mangle == "signature":
        data[-1] ^= 1
    elif mangle == "garbage":
        data = bytearray(b"\x0a\xff\xff")
    else:
        data = bytearray()
    msg = Register(ns="app", record=bytes(data), ttl=7200)
    response = make().register(IDS[0].peer_id, msg, 0.0)
    assert response.status == Status.E_INVALID_SIGNED_PEER_RECORD


def test_unsigned_records_can_be_refused() -> None:
    info = Register(ns="app", record=encode_peer_info(IDS[0].peer_id, (ADDR,)), ttl=7200)
    response = make(allow_unsigned=False).register(IDS[0].peer_id, info, 0.0)
    assert response.status == Status.E_INVALID_SIGNED_PEER_RECORD


def test_peer_info_registrants_get_peer_info_answers() -> None:
    reg = make()
    reg.register(IDS[0].peer_id, register(IDS[0]), 0.0)
    legacy = Register(ns="app", record=encode_peer_info(IDS[1].peer_id, (ADDR,)), ttl=7200)
    assert reg.register(IDS[1].peer_id, legacy, 0.0).status == Status.OK
    for_legacy = reg.discover(IDS[1].peer_id, Discover(ns="app"), 0.0)
    opened = [open_record(r.record, allow_unsigned=True) for r in for_legacy.registrations]
    assert [(o.peer_id, o.signed) for o in opened] == [
        (IDS[0].peer_id, False),
        (IDS[1].peer_id, False),
    ]
    assert opened[0].addrs == (ADDR,)
    for_others = reg.discover(IDS[2].peer_id, Discover(ns="app"), 0.0)
    signed = [open_record(r.record, allow_unsigned=True).signed for r in for_others.registrations]
    assert signed == [True, False]


def test_flood_from_one_peer_is_bounded() -> None:
    reg = make(max_per_peer=10, max_registrations=15)
    statuses = [
        reg.register(IDS[0].peer_id, register(IDS[0], ns=f"n{i}"), 0.0).status for i in range(50)
    ]
    assert statuses.count(Status.OK) == 10
    assert set(statuses[10:]) == {Status.E_UNAVAILABLE}
    statuses = [
        reg.register(IDS[1].peer_id, register(IDS[1], ns=f"n{i}"), 0.0).status for i in range(10)
    ]
    assert statuses.count(Status.OK) == 5 and reg.statistics().registrations == 15
    # refreshing an existing registration still works when full
    assert reg.register(IDS[0].peer_id, register(IDS[0], ns="n0"), 1.0).status == Status.OK


def test_response_size_is_bounded_and_pages_on() -> None:
    reg = make(max_response_size=1000)
    for ident in IDS[:5]:
        reg.register(ident.peer_id, register(ident), 0.0)
    first = reg.discover(IDS[5].peer_id, Discover(ns="app"), 0.0)
    assert 1 <= len(first.registrations) < 5
    assert len(encode_message(first)) < 1000 + 300
    rest = reg.discover(IDS[5].peer_id, Discover(ns="app", cookie=first.cookie), 0.0)
    assert len(first.registrations) + len(rest.registrations) <= 5
    assert rest.registrations


def test_expiry_heap_stays_bounded_under_refreshes() -> None:
    reg = make()
    for i in range(1000):
        reg.register(IDS[0].peer_id, register(IDS[0]), float(i))
    assert len(reg._expiry) <= 2 * 1 + 64


def test_handle_request_dispatches_and_rejects_garbage() -> None:
    reg = make()
    raw = reg.handle_request(IDS[0].peer_id, encode_message(register(IDS[0])), 0.0)
    assert raw is not None
    with pytest.raises(RemoteProtocolError):
        reg.handle_request(IDS[0].peer_id, b"\xff\xff", 0.0)
    with pytest.raises(RemoteProtocolError):
        reg.handle_request(IDS[0].peer_id, encode_message(RegisterResponse(status=Status.OK)), 0.0)


def test_bad_construction() -> None:
    with pytest.raises(ValueError):
        Registry(nonce=b"short")
    with pytest.raises(ValueError):
        make(min_ttl=10, default_ttl=5)


@given(
    ops=st.lists(st.tuples(st.integers(0, 4), st.booleans()), max_size=25),
    limit=st.integers(0, 4),
)
@settings(max_examples=60, deadline=None)
def test_paging_with_cookies_sees_each_registration_once(
    ops: list[tuple[int, bool]], limit: int
) -> None:
    # Registrations, refreshes and unregistrations interleaved with pages: a reader following
    # the cookie sees every live registration, and each refresh again, once and in order.
    reg = make(max_discover_limit=3)
    records = {i: register(IDS[i]) for i in range(5)}
    cookie = b""
    seen: list[int] = []
    expected: list[int] = []
    for who, add in ops:
        peer = IDS[who].peer_id
        if add:
            reg.register(peer, records[who], 0.0)
            expected = [s for s in expected if s != who] + [who]
        else:
            reg.unregister(peer, "app")
            expected = [s for s in expected if s != who]
        page = reg.discover(IDS[5].peer_id, Discover(ns="app", limit=limit, cookie=cookie), 0.0)
        assert page.status == Status.OK
        cookie = page.cookie
        seen += [IDS.index(next(i for i in IDS if i.peer_id == p)) for p in peers_of(page)]
    for _ in range(30):
        page = reg.discover(IDS[5].peer_id, Discover(ns="app", limit=limit, cookie=cookie), 0.0)
        cookie = page.cookie
        seen += [IDS.index(next(i for i in IDS if i.peer_id == p)) for p in peers_of(page)]
    # every live registration was seen, and after its last refresh
    for who in expected:
        assert who in seen
    live_order = [w for w in seen if w in expected]
    assert [w for i, w in enumerate(live_order) if w not in live_order[i + 1 :]] == expected
