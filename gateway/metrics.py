"""Prometheus metrics of one gateway, on its own registry (several apps can share a process)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.backends import Topology
from gateway.merge import Executor
from tickdb import curve_links


class _BackendCollector(Collector):
    """Backend gauges and merge counters read at scrape time, so they are never stale."""

    def __init__(self, topology: Topology, executor: Executor) -> None:
        self.topology = topology
        self.executor = executor

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        up = GaugeMetricFamily(
            "tickdb_gateway_backend_up",
            "1 if the backend answered its last info() call",
            labels=["backend", "role"],
        )
        lag = GaugeMetricFamily(
            "tickdb_gateway_backend_seq_lag",
            "Tickerplant sequence number minus the RDB's",
            labels=["backend"],
        )
        age = GaugeMetricFamily(
            "tickdb_gateway_backend_last_seen_seconds",
            "Seconds since the backend last answered info()",
            labels=["backend"],
        )
        retries = CounterMetricFamily(
            "tickdb_gateway_stale_retries",
            "Queries run again because an RDB rolled or handed a date over since its info()",
            value=float(self.topology.stale_retries),
        )
        now = time.time()
        for state in self.topology.states:
            up.add_metric([state.name, state.role], 1.0 if state.up else 0.0)
            info = state.info
            if info is not None and info.seq is not None and info.tp_seq is not None:
                lag.add_metric([state.name], float(info.tp_seq - info.seq))
            if state.ok_at is not None:
                age.add_metric([state.name], now - state.ok_at)
        yield from (up, lag, age, retries)
        yield from self._replicas()
        merges = CounterMetricFamily(
            "tickdb_gateway_merges",
            "Answers merged from several parts, by how: stacking Arrow tables, an Arrow "
            "aggregate or sort, or a DuckDB pass",
            labels=["engine"],
        )
        merges.add_metric(["stack"], float(self.executor.stacked))
        merges.add_metric(["arrow"], float(self.executor.arrow_merged))
        merges.add_metric(["duckdb"], float(self.executor.merged))
        yield merges
        yield _zeromq_refused()

    def _replicas(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        labels = ["backend", "replica"]
        serving = GaugeMetricFamily(
            "tickdb_gateway_replica_serving",
            "1 if the replica is up and current (it may take queries)",
            labels=labels,
        )
        routed = CounterMetricFamily(
            "tickdb_gateway_replica_parts", "Parts of queries sent to the replica", labels=labels
        )
        failovers = CounterMetricFamily(
            "tickdb_gateway_replica_failovers",
            "Parts of queries that failed on the replica and ran again on another one",
            labels=labels,
        )
        for state in self.topology.states:
            for replica in state.members():
                names = [state.name, replica.name]
                serving.add_metric(names, 1.0 if replica.current else 0.0)
                routed.add_metric(names, float(replica.routed))
                failovers.add_metric(names, float(replica.failovers))
        restarted = CounterMetricFamily(
            "tickdb_gateway_replica_restarts_seen",
            "Replies from a replica that restarted since its last info() (not used)",
            value=float(self.executor.parts.restarts_seen),
        )
        yield from (serving, routed, failovers, restarted)


def _zeromq_refused() -> CounterMetricFamily:
    """Connections the CURVE of this process's ZeroMQ ports (the order port) refused."""
    counts = curve_links.counters()
    refused = CounterMetricFamily(
        "tickdb_gateway_zeromq_refused",
        "ZeroMQ connections refused ([curve]): a key no identity has, an identity without "
        "the port's role, a client without CURVE or with another server key, a port at its "
        "max_connections",
        labels=["why"],
    )
    unknown = counts.get("zap_denied", 0) - counts.get("zap_denied_role", 0)
    refused.add_metric(["unknown_key"], float(unknown))
    refused.add_metric(["no_role"], float(counts.get("zap_denied_role", 0)))
    refused.add_metric(["handshake"], float(counts.get("handshake_failed", 0)))
    refused.add_metric(["busy"], float(counts.get("zap_denied_busy", 0)))
    return refused


class GatewayMetrics:
    def __init__(self, topology: Topology, executor: Executor) -> None:
        self.registry = CollectorRegistry()
        self.queries = Counter(
            "tickdb_gateway_queries",
            "Queries answered, by plan and outcome",
            ["plan", "outcome"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "tickdb_gateway_query_seconds",
            "Query latency by plan",
            ["plan"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.rows = Counter(
            "tickdb_gateway_result_rows", "Rows returned to clients", registry=self.registry
        )
        self.registry.register(_BackendCollector(topology, executor))

    def render(self) -> bytes:
        return generate_latest(self.registry)
