"""Listening on the bare ``/p2p-circuit``: circuits from a relay are accepted although the
reservation was made by hand (a RESERVE on a stream of the node's own, as p2pd's clients do),
not by the transport; without that listener the same stop CONNECT is refused."""

from __future__ import annotations

import anyio
import pytest

from p2pstack.errors import DialError, TransportError
from protocols.relay import ANY_RELAY, RelayService, Status
from tests.protocols.relay.hop_client import reserve
from tests.protocols.relay.test_client import ECHO, echo, node
from tests.protocols.relay.test_end_to_end import LISTEN

pytestmark = pytest.mark.anyio


async def test_any_relay_listener_takes_circuits_after_a_reservation_by_hand() -> None:
    async with (
        node(RelayService(), listen=LISTEN) as relay,
        node(listen=(ANY_RELAY,)) as target,
        node() as dialer,
    ):
        assert target.listen_addrs == []  # it adds no address of its own
        target.set_stream_handler(ECHO, echo, allow_limited=True)
        with anyio.fail_after(30):
            await target.connect(f"{relay.listen_addrs[0]}/p2p/{relay.peer_id}")
            answer = await reserve(target, relay.peer_id)
            assert answer.status is Status.OK
            circuit = f"{relay.listen_addrs[0]}/p2p/{relay.peer_id}/p2p-circuit"
            conn = await dialer.connect(f"{circuit}/p2p/{target.peer_id}")
            assert conn.limited
            stream = await dialer.new_stream(target.peer_id, ECHO, allow_limited=True)
            await stream.send(b"reserved by hand")
            assert await stream.receive() == b"reserved by hand"
            await stream.aclose()
            with pytest.raises(TransportError, match="already listening"):
                await target.listen([ANY_RELAY])


async def test_without_the_any_relay_listener_a_reservation_by_hand_is_not_enough() -> None:
    async with (
        node(RelayService(), listen=LISTEN) as relay,
        node() as target,
        node() as dialer,
    ):
        with anyio.fail_after(30):
            await target.connect(f"{relay.listen_addrs[0]}/p2p/{relay.peer_id}")
            assert (await reserve(target, relay.peer_id)).status is Status.OK
            circuit = f"{relay.listen_addrs[0]}/p2p/{relay.peer_id}/p2p-circuit"
            with pytest.raises(DialError) as err:
                await dialer.connect(f"{circuit}/p2p/{target.peer_id}")
        # The target refused the relay's stop CONNECT, which the relay reports as a failure.
        assert "CONNECTION_FAILED" in str(err.value)
