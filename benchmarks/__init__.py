"""Benchmarks of p2pstack against js-libp2p and py-libp2p (not part of the test suite); run
``python -m benchmarks`` (``make bench``). See docs/performance.md."""
