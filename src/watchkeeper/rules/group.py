"""One rule group's evaluation: its rules in order at one instant, each rule's output stored
before the next rule runs (so a rule sees what an earlier one of its group recorded), with
staleness markers for series a rule stopped producing, as Prometheus' rules manager does.

Recording rules store their result under the recorded name with the rule's labels; alerting
rules advance their alerts (alerting.py) and store `ALERTS` and `ALERTS_FOR_STATE`. A rule
whose query fails keeps its previous state and reports the error as its health.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from watchkeeper.model import METRIC_NAME, Labels, SeriesBatch, labels_from_key, series_key
from watchkeeper.promql import Engine, QueryError, StoreQuerier
from watchkeeper.rules.alerting import AlertingRule, vector_of
from watchkeeper.rules.rulefile import Rule, RuleGroup
from watchkeeper.rules.template_functions import Sample
from watchkeeper.store import MetricStore

STALE_NAN_BITS = 0x7FF0000000000002


@dataclass
class RuleStatus:
    """What /api/v1/rules shows of a rule."""

    health: str = "unknown"  # ok, err, unknown (not evaluated yet)
    last_error: str = ""
    last_evaluation_ms: int = 0
    evaluation_seconds: float = 0.0


@dataclass
class RuleState:
    rule: Rule
    alerting: AlertingRule | None
    status: RuleStatus = field(default_factory=RuleStatus)
    written: set[bytes] = field(default_factory=set)  # series of the last evaluation


class GroupEvaluator:
    def __init__(
        self,
        group: RuleGroup,
        engine: Engine,
        store: MetricStore,
        tenant: str,
        external_labels: Labels = (),
        external_url: str = "",
    ) -> None:
        self.group = group
        self.engine = engine
        self.store = store
        self.tenant = tenant
        self.rules = [
            RuleState(
                rule,
                AlertingRule(rule, external_labels, external_url) if rule.alert else None,
            )
            for rule in group.rules
        ]
        self.last_evaluation_ms = 0
        self.evaluation_seconds = 0.0

    def evaluate(self, at_ms: int) -> None:
        """Evaluate every rule of the group at `at_ms`, storing what each produces."""
        started = time.perf_counter()
        querier = StoreQuerier(self.store, self.tenant)
        query_at = at_ms - (self.group.query_offset_ms or 0)

        def template_query(expression: str) -> list[Sample]:
            result = self.engine.instant_query(querier, expression, query_at)
            return [Sample(dict(labels), value) for labels, value in vector_of(result)]

        for state in self.rules:
            self._evaluate_rule(state, querier, query_at, template_query)
        self.last_evaluation_ms = at_ms
        self.evaluation_seconds = time.perf_counter() - started

    def _evaluate_rule(
        self,
        state: RuleState,
        querier: StoreQuerier,
        at_ms: int,
        template_query: Callable[[str], list[Sample]],
    ) -> None:
        started = time.perf_counter()
        status = state.status
        status.last_evaluation_ms = at_ms
        try:
            samples = vector_of(self.engine.instant_query(querier, state.rule.expr, at_ms))
            if state.alerting is not None:
                state.alerting.evaluate(samples, at_ms, template_query, self.group.limit)
                produced = state.alerting.series(at_ms)
            else:
                produced = self._recorded(state.rule, samples)
        except (QueryError, ValueError) as err:
            status.health, status.last_error = "err", str(err)
            status.evaluation_seconds = time.perf_counter() - started
            return
        keys = [series_key(labels) for labels, _ in produced]
        gone = sorted(state.written - set(keys))
        state.written = set(keys)
        all_keys = keys + gone
        values = [v for _, v in produced] + [0.0] * len(gone)
        batch_values = np.asarray(values, dtype=np.float64)
        if gone:
            batch_values[len(keys) :] = np.uint64(STALE_NAN_BITS).view(np.float64)
        labels = [labels for labels, _ in produced]
        batch = SeriesBatch(
            keys=all_keys,
            labels_of=lambda i: labels[i] if i < len(labels) else labels_from_key(all_keys[i]),
            sample_series=np.arange(len(all_keys), dtype=np.int64),
            timestamps=np.full(len(all_keys), at_ms, dtype=np.int64),
            values=batch_values,
        )
        result = self.store.append(self.tenant, batch)
        status.health = "ok"
        status.last_error = ""
        if result.rejected:
            reason, (count, example) = next(iter(result.rejected.items()))
            status.last_error = f"{count} samples not stored: {reason}: {example}"
        status.evaluation_seconds = time.perf_counter() - started

    def _recorded(
        self, rule: Rule, samples: list[tuple[Labels, float]]
    ) -> list[tuple[Labels, float]]:
        out: list[tuple[Labels, float]] = []
        seen: set[Labels] = set()
        for sample_labels, value in samples:
            labels = dict(sample_labels)
            labels[METRIC_NAME] = rule.record
            for name, text in rule.labels:
                if text:
                    labels[name] = text
                else:
                    labels.pop(name, None)
            final = tuple(sorted(labels.items()))
            if final in seen:
                raise ValueError(
                    "vector contains metrics with the same labelset after applying rule labels"
                )
            seen.add(final)
            out.append((final, value))
        limit = self.group.limit
        if limit and len(out) > limit:
            raise ValueError(f"exceeded limit of {limit} with {len(out)} series")
        return out
