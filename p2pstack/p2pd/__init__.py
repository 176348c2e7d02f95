"""The p2pd control protocol (go-libp2p-daemon's API, also spoken by js-libp2p's daemon): its
message schema in :mod:`p2pstack.p2pd.pb`."""
