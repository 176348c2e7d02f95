"""Peer discovery (issue 13): ways of finding peers that feed ``p2pstack.discovery``.

Subpackages: ``protocols.discovery.mdns`` (multicast DNS on the local network).
"""
