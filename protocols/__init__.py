"""p2pstack protocols (ping, identify, perf, ...), built on p2pstack's public API."""
