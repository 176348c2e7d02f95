"""Prometheus metrics for a node: the resource manager's usage, refusals and evictions, and the
host's statistics, served over HTTP at ``/metrics`` in the text exposition format
(https://prometheus.io/docs/instrumenting/exposition_formats/).

``prometheus-client`` is an optional dependency (``pip install 'p2pstack[metrics]'``); it is
imported only when a collector or a server is created.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    import threading
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.metrics_core import Metric

    from p2pstack.resources import ResourceManager, ResourceStatistics

__all__ = ["MetricsServer", "NodeCollector", "parse_listen_addr", "start_metrics_server"]

PREFIX = "p2pstack"


class HasStatistics(Protocol):
    """Anything with a ``statistics()`` that returns an attrs snapshot (a host, a service)."""

    def statistics(self) -> Any: ...


def _prometheus() -> Any:
    try:
        import prometheus_client
        import prometheus_client.core  # the *MetricFamily classes
    except ImportError:
        raise ImportError(
            "p2pstack.metrics needs prometheus-client: pip install 'p2pstack[metrics]'"
        ) from None
    return prometheus_client


def _snapshot(source: HasStatistics) -> Any:
    # The collector runs in the HTTP server's thread while the event loop changes the counts:
    # a dict resized mid-copy raises RuntimeError; the next attempt sees a settled state.
    for _ in range(4):
        try:
            return source.statistics()
        except RuntimeError:
            continue
    return source.statistics()


class NodeCollector:
    """A prometheus-client collector that reads its sources at each scrape (register it in
    your own ``CollectorRegistry``, or use ``start_metrics_server``).

    Args:
        resource_manager: exported as ``p2pstack_resource_*``.
        host: its ``statistics()`` numeric fields exported as ``p2pstack_host_<field>``; its
            ``resource_manager`` attribute, if any, is used when ``resource_manager`` is omitted.

    Raises:
        ImportError: prometheus-client is not installed.
    """

    def __init__(
        self,
        *,
        resource_manager: ResourceManager | None = None,
        host: HasStatistics | None = None,
    ) -> None:
        self._prom = _prometheus()
        if resource_manager is None and host is not None:
            resource_manager = getattr(host, "resource_manager", None)
        self.resource_manager = resource_manager
        self.host = host

    def collect(self) -> Iterator[Metric]:
        """The current metrics (called by the registry at each scrape)."""
        if self.resource_manager is not None:
            yield from _resource_metrics(self._prom, _snapshot(self.resource_manager))
        if self.host is not None:
            yield from _host_metrics(self._prom, _snapshot(self.host))


def _resource_metrics(prom: Any, stats: ResourceStatistics) -> Iterator[Metric]:
    core = prom.core
    name = f"{PREFIX}_resource"
    conns = core.GaugeMetricFamily(
        f"{name}_connections", "Connections held per scope kind.", labels=["scope", "direction"]
    )
    streams = core.GaugeMetricFamily(
        f"{name}_streams", "Streams held per scope kind.", labels=["scope", "direction"]
    )
    memory = core.GaugeMetricFamily(
        f"{name}_memory_bytes", "Memory reserved per scope kind.", labels=["scope"]
    )
    for kind, usage in stats.usage.items():
        for direction in ("inbound", "outbound"):
            conns.add_metric([kind, direction], getattr(usage, f"connections_{direction}"))
            streams.add_metric([kind, direction], getattr(usage, f"streams_{direction}"))
        memory.add_metric([kind], usage.memory)
    yield from (conns, streams, memory)
    for label, table in (("protocol", stats.protocols), ("service", stats.services)):
        family = core.GaugeMetricFamily(
            f"{name}_{label}_streams", f"Streams per {label}.", labels=[label, "direction"]
        )
        for key, usage in table.items():
            family.add_metric([key, "inbound"], usage.streams_inbound)
            family.add_metric([key, "outbound"], usage.streams_outbound)
        yield family
    yield core.GaugeMetricFamily(f"{name}_peers", "Peers holding resources.", value=stats.peers)
    yield core.GaugeMetricFamily(
        f"{name}_pending_upgrades", "Inbound connections being upgraded.", value=stats.pending
    )
    limit = stats.limits.system.connections
    yield core.GaugeMetricFamily(
        f"{name}_system_connection_limit",
        "Most connections the node holds (after the file-descriptor cap).",
        value=math.inf if limit is None else limit,
    )
    refusals = core.CounterMetricFamily(
        f"{name}_refusals", "Requests refused by a limit.", labels=["scope", "resource"]
    )
    for key, count in stats.refusals.items():
        scope, _, resource = key.partition("/")
        refusals.add_metric([scope, resource], count)
    yield refusals
    yield core.CounterMetricFamily(
        f"{name}_evictions",
        "Silent pending connections evicted to admit newer ones.",
        value=stats.evictions,
    )


def _host_metrics(prom: Any, stats: Any) -> Iterator[Metric]:
    if not attrs.has(type(stats)):
        return
    for field in attrs.fields(type(stats)):
        value = getattr(stats, field.name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            yield prom.core.GaugeMetricFamily(
                f"{PREFIX}_host_{field.name}", f"Host statistics: {field.name}.", value=value
            )


def parse_listen_addr(addr: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6; an empty host means all interfaces).

    Raises:
        ValueError: ``addr`` has no valid port.
    """
    host, sep, port_text = addr.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"metrics address must be host:port, not {addr!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port_text)


@attrs.define
class MetricsServer:
    """A running metrics endpoint; ``close()`` stops it (idempotent)."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread
    _closed: bool = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start_metrics_server(
    addr: str,
    *,
    resource_manager: ResourceManager | None = None,
    host: HasStatistics | None = None,
) -> MetricsServer:
    """Serve the sources' metrics at ``http://<addr>/metrics`` from a background thread.

    Args:
        addr: ``host:port`` to listen on (port 0 picks a free port; see ``MetricsServer.port``).
        resource_manager: a resource manager to export.
        host: a host whose ``statistics()`` (and resource manager) to export.

    Returns:
        The running server; call ``close()`` to stop it.

    Raises:
        ImportError: prometheus-client is not installed.
        ValueError: ``addr`` is not ``host:port``.
        OSError: the address could not be bound.
    """
    prom = _prometheus()
    bind_host, port = parse_listen_addr(addr)
    registry = prom.CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(resource_manager=resource_manager, host=host))
    server, thread = prom.start_http_server(port, addr=bind_host, registry=registry)
    return MetricsServer(bind_host, server.server_port, server, thread)
