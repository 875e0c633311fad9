"""watchkeeper's own metrics, in a registry owned by the running app (never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Instruments:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.samples_ingested = Counter(
            "watchkeeper_ingested_samples",
            "Samples stored, by ingest protocol.",
            ["protocol"],
            registry=registry,
        )
        self.samples_rejected = Counter(
            "watchkeeper_rejected_samples",
            "Samples refused, by ingest protocol and reason.",
            ["protocol", "reason"],
            registry=registry,
        )
        self.requests_rejected = Counter(
            "watchkeeper_rejected_requests",
            "Requests refused as a whole, by handler and reason.",
            ["handler", "reason"],
            registry=registry,
        )
        self.wal_fsync = Histogram(
            "watchkeeper_wal_fsync_duration_seconds",
            "Time of one WAL group-commit fsync.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=registry,
        )
        self.active_series = Gauge(
            "watchkeeper_active_series",
            "Series held in the metrics store's index, over all tenants.",
            registry=registry,
        )
        self.queries_running = Gauge(
            "watchkeeper_queries_running",
            "PromQL queries being evaluated now (at most query.max_concurrent).",
            registry=registry,
        )
        self.queries_queued = Gauge(
            "watchkeeper_queries_queued",
            "PromQL queries waiting for a free query.max_concurrent slot.",
            registry=registry,
        )
        self.http_duration = Histogram(
            "watchkeeper_http_request_duration_seconds",
            "HTTP request latency by route, method and status code.",
            ["handler", "method", "code"],
            registry=registry,
        )
        self.rule_arrival_evaluations = Counter(
            "watchkeeper_rule_evaluations_on_arrival",
            "Alerting rule evaluations between turns, made because an arriving sample changed "
            "the rule's answer (rules.evaluate_on_arrival).",
            registry=registry,
        )
        self.notifications = Counter(
            "watchkeeper_notifications",
            "Notifications attempted, by integration kind (Alertmanager's "
            "alertmanager_notifications_total).",
            ["integration"],
            registry=registry,
        )
        self.notifications_failed = Counter(
            "watchkeeper_notifications_failed",
            "Notifications that did not get through after their retries, by integration kind "
            "and receiver.",
            ["integration", "receiver"],
            registry=registry,
        )
