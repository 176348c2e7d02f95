"""Circuit relay v2 (``/libp2p/circuit/relay/0.2.0/hop`` and ``/stop``): message schema in
:mod:`protocols.relay.pb`."""
