"""A p2pd-compatible daemon (a composition root): the go-libp2p-daemon control protocol over a
unix or TCP control socket, driving a p2pstack node; ``p2pstack daemon`` runs it (docs/daemon.md).

Parts: ``_wire`` (sans-IO request parsing and response frames), ``_server`` (control
connections, the plain requests), ``_streams`` (STREAM_OPEN, STREAM_HANDLER), ``_dht``,
``_pubsub``, ``_pipe`` (stream piping), ``_flags`` (p2pd's command line), ``_main`` (the
executable).
"""

from p2pstack.roots.daemon._flags import DaemonOptions, FlagError, parse_flags
from p2pstack.roots.daemon._server import DaemonServer, ServerConfig
from p2pstack.roots.daemon._wire import ControlError, RequestDecoder, parse_request

__all__ = [
    "ControlError",
    "DaemonOptions",
    "DaemonServer",
    "FlagError",
    "RequestDecoder",
    "ServerConfig",
    "parse_flags",
    "parse_request",
]
