"""Peer discovery protocols (``rendezvous``, ...), each in its own subpackage."""
