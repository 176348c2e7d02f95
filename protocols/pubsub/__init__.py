"""libp2p publish/subscribe (https://github.com/libp2p/specs/tree/master/pubsub)."""
