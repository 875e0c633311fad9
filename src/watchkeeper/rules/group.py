"""One rule group's evaluation: its rules in order at one instant, each rule's output stored
before the next rule runs (so a rule sees what an earlier one of its group recorded), with
staleness markers for series a rule stopped producing, as Prometheus' rules manager does.

Recording rules store their result under the recorded name with the rule's labels; alerting
rules advance their alerts (alerting.py) and store `ALERTS` and `ALERTS_FOR_STATE`. A rule
whose query fails keeps its previous state and reports the error as its health.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import promql_parser as pp

from watchkeeper.model import (
    METRIC_NAME,
    Labels,
    Matcher,
    MatchOp,
    SeriesBatch,
    labels_from_key,
    series_key,
)
from watchkeeper.model.alerts import Alert as Notice
from watchkeeper.model.histogram import FloatHistogram
from watchkeeper.promql import Engine, QueryError, StoreQuerier
from watchkeeper.promql.ast import children, offset_ms, selector_matcher_sets
from watchkeeper.promql.querier import PrefetchedQuerier, Querier
from watchkeeper.promql.values import STALE_NAN_BITS
from watchkeeper.rules.alerting import (
    ALERTS,
    ALERTS_FOR_STATE,
    Alert,
    AlertingRule,
    AlertState,
    samples_of,
    vector_of,
)
from watchkeeper.rules.on_arrival import Threshold, threshold_of
from watchkeeper.rules.rulefile import Rule, RuleGroup
from watchkeeper.rules.template_functions import Sample
from watchkeeper.store import MetricStore


@dataclass(frozen=True)
class RestoreOptions:
    # how far back the previous run's ALERTS_FOR_STATE is looked for
    # (Prometheus' --rules.alert.for-outage-tolerance)
    outage_tolerance_ms: int = 3_600_000
    # an alert restored with less than this left to wait waits this long, and a rule with a
    # shorter `for` is not restored (--rules.alert.for-grace-period)
    grace_period_ms: int = 600_000


@dataclass(frozen=True)
class SendOptions:
    """Sending alerts to the Alertmanager, as Prometheus' notifier does: `notify` gets the
    alerts that need sending after each evaluation of an alerting rule."""

    notify: Callable[[list[Notice]], None]
    # a firing alert is sent again after this (Prometheus' --rules.alert.resend-delay)
    resend_delay_ms: int = 60_000
    interval_ms: int = 60_000  # the group's evaluation interval


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
    tree: Any = None  # the expression, parsed at the first evaluation


class GroupEvaluator:
    def __init__(
        self,
        group: RuleGroup,
        engine: Engine,
        store: MetricStore,
        tenant: str,
        external_labels: Labels = (),
        external_url: str = "",
        restore: RestoreOptions | None = None,
        send: SendOptions | None = None,
    ) -> None:
        """With `restore`, the alerts' `for` state is restored from ALERTS_FOR_STATE after the
        first evaluation, as Prometheus restores it when it starts; with `send`, alerts are
        handed to the Alertmanager."""
        self.group = group
        self.send = send
        self.external_labels = external_labels
        self.external_url = external_url
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
        # held while evaluating: readers (the rules and alerts API) take it to see a whole state
        self.lock = threading.Lock()
        self._restore = restore
        self._prefetch: list[list[Matcher]] | None = None
        self._thresholds: dict[int, Threshold] | None = None
        if restore is not None:
            for state in self.rules:
                if state.alerting is not None:
                    state.alerting.restored = False

    def evaluate(self, at_ms: int) -> None:
        """Evaluate every rule of the group at `at_ms`, storing what each produces."""
        with self.lock:
            self._evaluate(at_ms)

    def _evaluate(self, at_ms: int) -> None:
        started = time.perf_counter()
        query_at = at_ms - (self.group.query_offset_ms or 0)
        querier = self._querier(query_at)
        template_query = self._template_query(querier, query_at)
        for state in self.rules:
            if state.status.last_evaluation_ms > query_at:
                continue  # evaluated on arrival since this turn's instant: that state is newer
            ok = self._evaluate_rule(state, querier, query_at, template_query)
            if ok and state.alerting is not None and self.send is not None:
                self._send_alerts(state.alerting, at_ms, self.send)
        if self._restore is not None:
            for state in self.rules:
                self._restore_for_state(state, at_ms, self._restore)
            self._restore = None
        self.last_evaluation_ms = at_ms
        self.evaluation_seconds = time.perf_counter() - started

    def thresholds(self) -> dict[int, Threshold]:
        """The rules evaluated on arrival (on_arrival.py), by position: alerting rules of the
        form `selector op number`, unless the group has a query offset (an arrival is not
        what the rule reads next) or the group itself writes the selector's metric (the rule
        sees that in the same turn)."""
        if self._thresholds is None:
            found: dict[int, Threshold] = {}
            written = {s.rule.record for s in self.rules if s.rule.record}
            for index, state in enumerate(self.rules):
                if state.alerting is None or self.group.query_offset_ms:
                    continue
                try:
                    if state.tree is None:
                        state.tree = self.engine.parse_instant(state.rule.expr)
                except QueryError:
                    continue
                threshold = threshold_of(state.tree)
                if threshold is not None and threshold.metric not in written:
                    found[index] = threshold
            self._thresholds = found
        return self._thresholds

    def evaluate_rules(self, indexes: Iterable[int], at_ms: int) -> int:
        """Evaluate these rules (positions in the group) at `at_ms` on their own, sending their
        alerts; a rule evaluated at or after `at_ms` already is left alone. A rule evaluated
        so before the group's first turn has its alerts' `for` state restored then, as the
        first turn does. Returns how many were evaluated."""
        with self.lock:
            querier = StoreQuerier(self.store, self.tenant)
            template_query = self._template_query(querier, at_ms)
            done = 0
            for index in sorted(indexes):
                state = self.rules[index]
                if state.status.last_evaluation_ms >= at_ms:
                    continue
                done += 1
                ok = self._evaluate_rule(state, querier, at_ms, template_query)
                if self._restore is not None:
                    self._restore_for_state(state, at_ms, self._restore)
                if ok and state.alerting is not None and self.send is not None:
                    self._send_alerts(state.alerting, at_ms, self.send)
            return done

    def _template_query(self, querier: Querier, query_at: int) -> Callable[[str], list[Sample]]:
        def template_query(expression: str) -> list[Sample]:
            result = self.engine.instant_query(querier, expression, query_at)
            return [Sample(dict(labels), value) for labels, value in vector_of(result)]

        return template_query

    def _querier(self, query_at: int) -> Querier:
        """The store, with the group's plain instant selectors read in one go beforehand when
        there are several: each rule's own read costs more than its share of one read. Not
        prefetched: selectors of what this group writes (a rule must see what an earlier
        one of its group recorded), and those with offset or @ or inside a range or subquery
        (their time ranges differ)."""
        base = StoreQuerier(self.store, self.tenant)
        if self._prefetch is None:
            self._prefetch = self._prefetchable()
        if len(self._prefetch) < 2:
            return base
        lookback = self.engine.options.lookback_delta_ms
        start, end = query_at - lookback + 1, query_at
        columns = self.store.read_columns(self.tenant, self._prefetch, start, end)
        return PrefetchedQuerier(base, columns, self._prefetch, start, end)

    def _prefetchable(self) -> list[list[Matcher]]:
        written = {ALERTS, ALERTS_FOR_STATE} | {s.rule.record for s in self.rules if s.rule.record}
        found: dict[tuple[Matcher, ...], list[Matcher]] = {}
        for state in self.rules:
            try:
                if state.tree is None:
                    state.tree = self.engine.parse_instant(state.rule.expr)
            except QueryError:
                continue  # reported when the rule is evaluated
            for node in _plain_instant_selectors(state.tree):
                sets = selector_matcher_sets(node)
                if len(sets) != 1:
                    continue
                names = [
                    m.value for m in sets[0] if m.name == METRIC_NAME and m.op is MatchOp.EQUAL
                ]
                if names and names[0] not in written:
                    found.setdefault(tuple(sets[0]), sets[0])
        return list(found.values())

    def _evaluate_rule(
        self,
        state: RuleState,
        querier: Querier,
        at_ms: int,
        template_query: Callable[[str], list[Sample]],
    ) -> bool:
        started = time.perf_counter()
        status = state.status
        status.last_evaluation_ms = at_ms
        try:
            if state.tree is None:
                state.tree = self.engine.parse_instant(state.rule.expr)
            answer = self.engine.instant_query(querier, state.rule.expr, at_ms, tree=state.tree)
            produced: list[tuple[Labels, float | FloatHistogram]]
            if state.alerting is not None:
                samples = vector_of(answer)
                state.alerting.evaluate(samples, at_ms, template_query, self.group.limit)
                produced = list(state.alerting.series(at_ms))
            else:
                produced = self._recorded(state.rule, samples_of(answer))
        except (QueryError, ValueError) as err:
            status.health, status.last_error = "err", str(err)
            status.evaluation_seconds = time.perf_counter() - started
            return False
        keys = [series_key(labels) for labels, _ in produced]
        gone = sorted(state.written - set(keys))
        if not keys and not gone:  # nothing to write: no store round trip
            status.health, status.last_error = "ok", ""
            status.evaluation_seconds = time.perf_counter() - started
            return True
        state.written = set(keys)
        all_keys = keys + gone
        floats = [i for i, (_, v) in enumerate(produced) if not isinstance(v, FloatHistogram)]
        floats += range(len(keys), len(all_keys))
        values = [produced[i][1] if i < len(keys) else 0.0 for i in floats]
        batch_values = np.asarray(values, dtype=np.float64)
        if gone:
            batch_values[len(floats) - len(gone) :] = np.uint64(STALE_NAN_BITS).view(np.float64)
        histograms = [(i, v) for i, (_, v) in enumerate(produced) if isinstance(v, FloatHistogram)]
        labels = [labels for labels, _ in produced]
        batch = SeriesBatch(
            keys=all_keys,
            labels_of=lambda i: labels[i] if i < len(labels) else labels_from_key(all_keys[i]),
            sample_series=np.asarray(floats, dtype=np.int64),
            timestamps=np.full(len(floats), at_ms, dtype=np.int64),
            values=batch_values,
            histogram_series=np.array([i for i, _ in histograms], dtype=np.int64),
            histogram_timestamps=np.full(len(histograms), at_ms, dtype=np.int64),
            histograms=[h for _, h in histograms],
        )
        result = self.store.append(self.tenant, batch)
        status.health = "ok"
        status.last_error = ""
        if result.rejected:
            reason, (count, example) = next(iter(result.rejected.items()))
            status.last_error = f"{count} samples not stored: {reason}: {example}"
        status.evaluation_seconds = time.perf_counter() - started
        return True

    def _send_alerts(self, rule: AlertingRule, at_ms: int, send: SendOptions) -> None:
        """Prometheus' sendAlerts: a firing alert is sent when it was not sent within the
        resend delay, a resolved one once after it resolved; each valid for four times the
        longer of the group interval and the resend delay (two missed evaluations or sends
        survive), a resolved one ending when it resolved. External labels are added where the
        alert lacks them, and the generator URL points at the expression."""
        valid_for = 4 * max(send.interval_ms, send.resend_delay_ms)
        url = self.external_url + "/graph?g0.expr=" + urllib.parse.quote_plus(rule.rule.expr)
        url += "&g0.tab=1"
        out = []
        for alert in rule.alerts.values():
            if alert.state is AlertState.PENDING:
                continue
            resolved_since_sent = alert.resolved_at_ms > alert.last_sent_ms
            if not resolved_since_sent and alert.last_sent_ms + send.resend_delay_ms >= at_ms:
                continue
            alert.last_sent_ms = at_ms
            alert.valid_until_ms = at_ms + valid_for
            labels = dict(alert.labels)
            for name, value in self.external_labels:
                labels.setdefault(name, value)
            out.append(
                Notice(
                    labels=tuple(sorted(labels.items())),
                    annotations=alert.annotations,
                    starts_at_ms=alert.fired_at_ms,
                    ends_at_ms=alert.resolved_at_ms or alert.valid_until_ms,
                    generator_url=url,
                )
            )
        if out:
            send.notify(out)

    def _restore_for_state(self, state: RuleState, at_ms: int, options: RestoreOptions) -> None:
        """Prometheus' RestoreForState, after a rule's first evaluation: an alert pending when
        the previous run stopped picks up its pending time, shifted by the time the server was
        down, or by the grace period if less than that was left, so an alert neither fires
        early nor waits its `for` again."""
        rule = state.alerting
        if rule is None or rule.restored:
            return
        hold = rule.rule.for_ms
        if hold >= options.grace_period_ms:
            for alert in rule.alerts.values():
                self._restore_alert(alert, hold, at_ms, options)
        rule.restored = True

    def _restore_alert(self, alert: Alert, hold: int, at_ms: int, options: RestoreOptions) -> None:
        matchers = [Matcher(METRIC_NAME, MatchOp.EQUAL, ALERTS_FOR_STATE)] + [
            Matcher(name, MatchOp.EQUAL, value) for name, value in alert.labels
        ]
        start = at_ms - options.outage_tolerance_ms
        found = self.store.read(self.tenant, [matchers], start, at_ms)
        if not found or not len(found[0].timestamps):
            return
        # seconds, as Prometheus keeps them
        down_at = int(found[0].timestamps[-1]) // 1000 * 1000
        active_at = int(found[0].values[-1]) * 1000
        remaining = hold - (down_at - active_at)
        if remaining <= 0:
            return  # it was firing: the next evaluation finds it so again
        if remaining < options.grace_period_ms:
            alert.active_at_ms = at_ms + options.grace_period_ms - hold
        else:
            alert.active_at_ms = active_at + (at_ms - down_at)

    def _recorded(
        self, rule: Rule, samples: list[tuple[Labels, float | FloatHistogram]]
    ) -> list[tuple[Labels, float | FloatHistogram]]:
        out: list[tuple[Labels, float | FloatHistogram]] = []
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


def _plain_instant_selectors(node: Any) -> Iterator[Any]:
    """Vector selectors read at the query time itself: not under a range selector or a
    subquery, and without offset or @."""
    if isinstance(node, (pp.MatrixSelector, pp.SubqueryExpr)):
        return
    if isinstance(node, pp.VectorSelector):
        if node.at is None and not offset_ms(node):
            yield node
        return
    for child in children(node):
        yield from _plain_instant_selectors(child)
