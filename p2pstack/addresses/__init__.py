"""The host's addresses: where it listens, how peers observe it, what it advertises, and whether
it is reachable from the outside (``host.addresses``).

* Listen addresses: the bound ones, ``/ip4/0.0.0.0`` and ``/ip6/::`` expanded to the machine's
  interface addresses (``host.listen_addrs``); an unspecified address is never advertised.
* Observed addresses: identify's ``observedAddr`` (how a peer sees our side of a connection,
  https://github.com/libp2p/specs/blob/master/identify/README.md#observedaddr). One peer may lie,
  so an observed address is *confirmed* only once ``AddressConfig.confirmations`` distinct
  observers reported it (go-libp2p uses 4), counted per local address of the connection;
  observers are told apart by IP (IPv4 address, IPv6 /56) like go does, or by peer ID. Entries
  expire ``ttl`` seconds after their last report; every table is bounded.
* Advertised addresses: the listen addresses, the confirmed observed addresses of connections
  made from a listening port, and addresses other services add (``set_external``, e.g. relayed
  ``/p2p-circuit`` addresses).
* Reachability: ``unknown`` until a service (AutoNAT) decides ``public`` or ``private``; each
  change is published as ``ReachabilityChanged`` on the host's event bus.
"""

from p2pstack.addresses._book import AddressConfig, ObservedAddr, ObservedAddrBook
from p2pstack.addresses._ip import (
    Reachability,
    ip_of,
    is_public_addr,
    observer_group,
    transport_key,
)
from p2pstack.addresses._manager import AddressManager, ObservingConnection

__all__ = [
    "AddressConfig",
    "AddressManager",
    "ObservedAddr",
    "ObservedAddrBook",
    "ObservingConnection",
    "Reachability",
    "ip_of",
    "is_public_addr",
    "observer_group",
    "transport_key",
]
