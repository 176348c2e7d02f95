"""p2pstack transports, security channels and stream muxers, built on p2pstack's public API."""
