"""Peer discovery: the ``Discovery`` service (runs ``p2pstack.discovery.PeerDiscovery``
sources, feeds the peerstore, announces ``PeerDiscovered`` and dials by policy) and the
bootstrap list with ``/dnsaddr/`` resolution. docs/discovery.md describes them.

Use it as a host service::

    boot = Bootstrap(BootstrapConfig(peers=["/dnsaddr/bootstrap.example.org"]))
    async with open_host(..., services=[Identify(), kad, Discovery([boot, kad.discovery])]):
        ...

Other sources live in their own subpackages (``rendezvous``, ``mdns``) and plug in the same way.
"""

from protocols.discovery._bootstrap import Bootstrap, BootstrapConfig, check_bootstrap_addr
from protocols.discovery._dnsaddr import (
    DnsaddrError,
    DnsaddrLimitExceeded,
    DnsaddrLoop,
    DnsaddrResolver,
    DnsAnswerTooLarge,
    DnsNameNotFound,
    DnsTimeout,
    MalformedDnsAnswer,
    default_nameserver,
    is_dnsaddr,
)
from protocols.discovery._policy import DialPolicy, DialPolicyConfig, DialPolicyStatistics
from protocols.discovery._service import Discovery, DiscoveryConfig, DiscoveryStatistics

__all__ = [
    "Bootstrap",
    "BootstrapConfig",
    "DialPolicy",
    "DialPolicyConfig",
    "DialPolicyStatistics",
    "Discovery",
    "DiscoveryConfig",
    "DiscoveryStatistics",
    "DnsAnswerTooLarge",
    "DnsNameNotFound",
    "DnsTimeout",
    "DnsaddrError",
    "DnsaddrLimitExceeded",
    "DnsaddrLoop",
    "DnsaddrResolver",
    "MalformedDnsAnswer",
    "check_bootstrap_addr",
    "default_nameserver",
    "is_dnsaddr",
]
