"""p2pstack: a typed Python networking stack that speaks the libp2p wire protocols."""

__version__ = "0.1.0"
