"""Kademlia DHT (``/ipfs/kad/1.0.0``): peer routing, records and provider records
(https://github.com/libp2p/specs/blob/master/kad-dht/README.md).

Use it as a host service::

    config = KadConfig(bootstrap=["/ip4/.../tcp/4001/p2p/12D3Koo..."])
    async with open_host(..., services=[Identify(), Ping(), Kad(config)]) as host:
        dht = host.service(Kad)
        await dht.put_value(b"/pk/...", value)
        async for provider in dht.find_providers(cid_multihash):
            ...

Layout: sans-IO cores (``_wire`` codec, ``_lookup`` iterative lookup, ``_table`` k-buckets,
``_handler`` request answers, ``_store``/``_sqlite`` stores, ``_validation`` namespaces) and a thin
driver (``_service`` with ``_server`` inbound, ``_query``/``_ops`` outbound, ``_peers`` table
upkeep, ``_maintenance`` timers, ``_client`` one request per stream, ``_ping`` liveness).

Defaults (``KadConfig``) and where they differ from go-libp2p-kad-dht and js-libp2p's kad-dht:

- ``mode="server"``: answer queries and advertise the protocol from the start. go and js default
  to automatic mode (client until the node is publicly reachable); ``"auto"`` here is a server
  while a listen address is globally routable. A server default suits private networks, tests
  and the simulator, where no address is public; a node behind NAT should say ``"client"``.
- ``k=20`` (bucket size, replication, lookup width) as everywhere. ``alpha=3`` requests in
  flight per lookup, like js and rust; go uses 10. The lookup never drops a returned peer for
  not being closer than the peer that named it (js does) and ends when the k closest peers
  heard of have all answered or failed.
- ``request_timeout=10 s`` per request (dial included), ``query_timeout=60 s`` per lookup.
- ``quorum=16`` valid values for ``get_value`` (the local copy counts); in a smaller network the
  lookup simply ends with what it found. Peers that returned an outdated value, and the closest
  peers that returned none, are sent the best record (PUT_VALUE), as the spec says.
- Records live ``record_ttl=36 h`` and the records this node put are republished every 22 h;
  provider records live ``provider_ttl=48 h`` (spec, go, js) and this node's are republished
  every ``provider_republish=22 h`` (the IPFS reprovide interval); expired providers are swept
  hourly. Buckets untouched for ``refresh_interval=10 min`` are refreshed by a lookup (go: 10 min).
- Inbound: at most ``max_inbound_streams=128`` streams, ``max_inbound_per_peer=8`` per peer
  (more are reset and counted), messages up to 64 KiB (go and js accept 4 MiB; see ``_wire``),
  several requests per stream answered in order, a stream idle for ``idle_timeout=60 s`` is
  reset (go: 1 min). Malformed, oversized or invalid requests reset their stream and are counted
  in ``statistics()``; they never reach the rest of the host.
- Routing table: a peer enters it when it answers one of our requests, when identify lists the
  protocol and it then answers a FIND_NODE (go's "lookup check"; it also opens a DHT stream to
  the peer, which is what makes py-libp2p add us), or when a peer identify lists as a server
  opens a DHT stream to us. A peer whose request fails or times out leaves it (as in go); a full
  bucket keeps its least-recently-seen peer unless a ``/ipfs/ping/1.0.0`` check of it fails. A
  table under 10 peers rejoins through ``bootstrap`` every ``refresh_interval`` (go: "fix low
  peers").
- Random walk: with ``random_walk_interval`` set (off by default), a lookup of a random key
  runs that often and the peers it met are offered on ``Kad.discovery``, a
  ``p2pstack.discovery.PeerDiscovery`` source named ``"dht"`` (``random_walk()`` runs one now).
- Storage in memory, bounded; ``storage="path.sqlite"`` keeps records and providers across
  restarts.
"""

from protocols.kad._cid import InvalidCid, cid_to_key, key_to_cid
from protocols.kad._config import KadConfig, KadMode
from protocols.kad._events import (
    KadEvent,
    KadModeChanged,
    KadPeerAdded,
    KadPeerRemoved,
    KadStatistics,
)
from protocols.kad._ipns import make_ipns_record
from protocols.kad._keyspace import closest, distance, key_of, peer_key
from protocols.kad._lookup import LookupResult
from protocols.kad._service import Kad
from protocols.kad._sqlite import SqliteStore
from protocols.kad._store import MemoryProviderStore, MemoryRecordStore, ProviderStore, RecordStore
from protocols.kad._table import RoutingTable
from protocols.kad._types import (
    PROTOCOL_ID,
    ConnectionType,
    KadError,
    KadMessage,
    KadPeer,
    KadProtocolError,
    KadTimeout,
    MessageType,
    NotFound,
    Record,
    RecordValidationError,
)
from protocols.kad._validation import PassthroughValidator, Validator, Validators

__all__ = [
    "PROTOCOL_ID",
    "ConnectionType",
    "InvalidCid",
    "Kad",
    "KadConfig",
    "KadError",
    "KadEvent",
    "KadMessage",
    "KadMode",
    "KadModeChanged",
    "KadPeer",
    "KadPeerAdded",
    "KadPeerRemoved",
    "KadProtocolError",
    "KadStatistics",
    "KadTimeout",
    "LookupResult",
    "MemoryProviderStore",
    "MemoryRecordStore",
    "MessageType",
    "NotFound",
    "PassthroughValidator",
    "ProviderStore",
    "Record",
    "RecordStore",
    "RecordValidationError",
    "RoutingTable",
    "SqliteStore",
    "Validator",
    "Validators",
    "cid_to_key",
    "closest",
    "distance",
    "key_of",
    "key_to_cid",
    "make_ipns_record",
    "peer_key",
]
