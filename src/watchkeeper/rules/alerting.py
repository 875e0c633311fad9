"""Alerting rules: Prometheus' alert state machine, evaluation by evaluation.

Each sample of the rule's query at an evaluation is an alert (its labels, less `__name__`,
plus the rule's templated labels and `alertname`). A new alert is *pending*; once it has been
active for `for`, it is *firing* (at once with `for: 0`). An alert whose sample is gone is
dropped if it was pending; a firing one becomes *inactive* (resolved) and is kept 15 minutes so
it can be reported as resolved, or keeps firing for `keep_firing_for` first. Annotations are
rendered at every evaluation, with `$labels`, `$value`, `$externalLabels` and `$externalURL`;
a template failing to run shows its error in the annotation instead of failing the rule, as
Prometheus does. This follows rules/alerting.go in Prometheus 3.x.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from watchkeeper.model import METRIC_NAME, Labels, series_key
from watchkeeper.model.histogram import FloatHistogram
from watchkeeper.promql import QueryResult
from watchkeeper.rules.rulefile import Rule
from watchkeeper.rules.template_functions import LabelMap, QueryFunc, TemplateError
from watchkeeper.rules.templates import Template

ALERTNAME = "alertname"
ALERTSTATE = "alertstate"
ALERTS = "ALERTS"
ALERTS_FOR_STATE = "ALERTS_FOR_STATE"
# a resolved alert is kept this long so notifiers hear it resolved (Prometheus' value)
RESOLVED_RETENTION_MS = 15 * 60 * 1000


class AlertState(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


@dataclass
class Alert:
    labels: Labels
    annotations: Labels
    state: AlertState
    active_at_ms: int
    value: float
    fired_at_ms: int = 0
    resolved_at_ms: int = 0
    keep_firing_since_ms: int = 0
    # sending to the Alertmanager (group.py): when it last was, and the end it was given
    last_sent_ms: int = 0
    valid_until_ms: int = 0


@dataclass
class AlertingRule:
    rule: Rule
    external_labels: Labels = ()
    external_url: str = ""
    alerts: dict[bytes, Alert] = field(default_factory=dict)
    # until its `for` state is restored after a restart (group.py), a rule writes no ALERTS
    # series, so the restore reads only what the previous run wrote
    restored: bool = True

    def __post_init__(self) -> None:
        name = f"__alert_{self.rule.alert}"
        self._labels = [(k, Template(name, v)) for k, v in self.rule.labels]
        self._annotations = [(k, Template(name, v)) for k, v in self.rule.annotations]

    @property
    def name(self) -> str:
        return self.rule.alert

    def evaluate(
        self,
        samples: Sequence[tuple[Labels, float]],
        at_ms: int,
        query: QueryFunc | None = None,
        limit: int = 0,
    ) -> list[Alert]:
        """Advance the state machine with the query's samples at `at_ms`; returns the active
        (pending or firing) alerts. Raises ValueError when more alerts than `limit` would be
        active (all alerts are then dropped, as Prometheus drops them)."""
        seen: dict[bytes, tuple[Labels, Labels, float]] = {}
        for sample_labels, value in samples:
            labels, annotations = self._expand(sample_labels, value, at_ms, query)
            key = series_key(labels)
            if key in seen:
                raise ValueError(
                    "vector contains metrics with the same labelset after applying alert labels"
                )
            seen[key] = (labels, annotations, value)
        for key, (labels, annotations, value) in seen.items():
            alert = self.alerts.get(key)
            if alert is not None and alert.state is not AlertState.INACTIVE:
                alert.value, alert.annotations = value, annotations
            else:
                self.alerts[key] = Alert(labels, annotations, AlertState.PENDING, at_ms, value)
        hold, keep = self.rule.for_ms, self.rule.keep_firing_for_ms
        for key in list(self.alerts):
            alert = self.alerts[key]
            if key not in seen:
                if keep and alert.state is AlertState.FIRING:
                    if not alert.keep_firing_since_ms:
                        alert.keep_firing_since_ms = at_ms
                    if at_ms - alert.keep_firing_since_ms < keep:
                        continue
                if alert.state is AlertState.PENDING or (
                    alert.resolved_at_ms and at_ms - alert.resolved_at_ms > RESOLVED_RETENTION_MS
                ):
                    del self.alerts[key]
                    continue
                if alert.state is not AlertState.INACTIVE:
                    alert.state = AlertState.INACTIVE
                    alert.resolved_at_ms = at_ms
                continue
            alert.keep_firing_since_ms = 0
            if alert.state is AlertState.PENDING and at_ms - alert.active_at_ms >= hold:
                alert.state = AlertState.FIRING
                alert.fired_at_ms = at_ms
        active = [a for a in self.alerts.values() if a.state is not AlertState.INACTIVE]
        if limit and len(active) > limit:
            self.alerts.clear()
            raise ValueError(f"exceeded limit of {limit} with {len(active)} alerts")
        return active

    def series(self, at_ms: int) -> list[tuple[Labels, float]]:
        """The ALERTS and ALERTS_FOR_STATE samples of the active alerts at `at_ms`."""
        out: list[tuple[Labels, float]] = []
        if not self.restored:
            return out
        for alert in self.alerts.values():
            if alert.state is AlertState.INACTIVE:
                continue
            base = dict(alert.labels)
            alerts = {**base, METRIC_NAME: ALERTS, ALERTSTATE: alert.state.value}
            out.append((tuple(sorted(alerts.items())), 1.0))
            for_state = {**base, METRIC_NAME: ALERTS_FOR_STATE}
            out.append((tuple(sorted(for_state.items())), alert.active_at_ms / 1000))
        return out

    def _expand(
        self, sample_labels: Labels, value: float, at_ms: int, query: QueryFunc | None
    ) -> tuple[Labels, Labels]:
        labels_map = LabelMap(sample_labels)
        external = LabelMap(self.external_labels)
        data = {
            "Labels": labels_map,
            "ExternalLabels": external,
            "ExternalURL": self.external_url,
            "Value": value,
        }
        variables = {
            "$labels": labels_map,
            "$externalLabels": external,
            "$externalURL": self.external_url,
            "$value": value,
        }

        def render(template: Template) -> str:
            try:
                return template.render(
                    data, variables, query, at_ms / 1000, external_url=self.external_url
                )
            except TemplateError as err:
                return f"<error expanding template: {err}>"

        result = {k: v for k, v in sample_labels if k != METRIC_NAME}
        for name, template in self._labels:
            result[name] = render(template)
        result[ALERTNAME] = self.rule.alert
        annotations = tuple(sorted((k, render(t)) for k, t in self._annotations))
        return tuple(sorted((k, v) for k, v in result.items() if v)), annotations


def vector_of(value: QueryResult) -> list[tuple[Labels, float]]:
    """A rule query's result as samples: a vector, or a scalar as one sample without labels
    (Prometheus' EngineQueryFunc); anything else is an error. A native histogram sample counts
    as the value 0, as in Prometheus' alerting rules (its `$value`)."""
    return [
        (labels, 0.0 if isinstance(sample, FloatHistogram) else sample)
        for labels, sample in samples_of(value)
    ]


def samples_of(value: QueryResult) -> list[tuple[Labels, float | FloatHistogram]]:
    """`vector_of` with native histogram samples kept, for recording rules."""
    if value.result_type == "vector":
        return [
            (s.labels, s.histograms[0][1] if s.histograms else float(s.values[0]))
            for s in value.series
            if len(s.values) or s.histograms
        ]
    if value.result_type == "scalar":
        return [((), value.scalar)]
    raise ValueError("rule result is not a vector or scalar")
