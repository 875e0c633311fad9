"""Evaluation on arrival: an alerting rule of the form `selector op number` is evaluated as soon
as a sample arrives that changes its answer, not only at its group's next turn.

A rule like `node_filesystem_avail_bytes{mountpoint="/"} < 1e9` answers, at an instant, with
the series whose newest sample within the lookback delta passes the comparison. So the store's
arrivals (store/arrivals.py) tell, series by series, when that answer changes: a sample that
passes where the series' previous one did not (or was older than the lookback delta, or a
staleness marker), or the other way round. The rule is then evaluated at once, at the current
time, through the same state machine as on its turns, and its alerts are sent. Waiting for the
next turn costs up to a whole interval; this costs one rule evaluation per change.

`ArrivalTriggers` holds one tenant's watched series: for each watching rule, its series' ids
and whether each one's newest sample passes. A rule's series are looked up when its group is
loaded and now and then after its turns (rules/manager.py); a series created later joins the
rules whose selectors it matches with its first sample.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import promql_parser as pp

from watchkeeper.model import METRIC_NAME, Labels, Matcher, MatchOp, metric_name
from watchkeeper.promql.ast import offset_ms, selector_matcher_sets
from watchkeeper.promql.binops import ARITHMETIC, COMPARISON
from watchkeeper.promql.values import is_stale
from watchkeeper.store.arrivals import Arrivals, SeriesNewest
from watchkeeper.store.ordering import INT64_MIN

OPS = ("==", "!=", ">", "<", ">=", "<=")
# a rule: its group's file and name, and its position in the group
RuleKey = tuple[str, str, int]
# `number op selector` is `selector op' number`
_MIRRORED = {"==": "==", "!=": "!=", ">": "<", "<": ">", ">=": "<=", "<=": ">="}


@dataclass(frozen=True)
class Threshold:
    """A rule's comparison of one selector's samples with a number."""

    matchers: tuple[Matcher, ...]
    op: str
    value: float

    @property
    def metric(self) -> str:
        return next(
            m.value for m in self.matchers if m.name == METRIC_NAME and m.op is MatchOp.EQUAL
        )


def threshold_of(tree: Any) -> Threshold | None:
    """The threshold of an expression `selector op number` or `number op selector` (in any
    parentheses, the number possibly an arithmetic of numbers), without `bool`, whose selector
    names its metric and has no offset or @; None for any other expression."""
    node = _unwrapped(tree)
    if not isinstance(node, pp.BinaryExpr) or str(node.op) not in OPS:
        return None
    if node.modifier is not None and node.modifier.return_bool:
        return None
    op = str(node.op)
    lhs, rhs = _unwrapped(node.lhs), _unwrapped(node.rhs)
    if isinstance(rhs, pp.VectorSelector):
        lhs, rhs, op = rhs, lhs, _MIRRORED[op]
    number = _constant(rhs)
    if not isinstance(lhs, pp.VectorSelector) or number is None:
        return None
    if lhs.at is not None or offset_ms(lhs):
        return None
    sets = selector_matcher_sets(lhs)
    if len(sets) != 1:
        return None
    if not any(m.name == METRIC_NAME and m.op is MatchOp.EQUAL for m in sets[0]):
        return None
    return Threshold(tuple(sets[0]), op, number)


def _unwrapped(node: Any) -> Any:
    while isinstance(node, pp.ParenExpr):
        node = node.expr
    return node


def _constant(node: Any) -> float | None:
    node = _unwrapped(node)
    if isinstance(node, pp.NumberLiteral):
        return float(node.val)
    if isinstance(node, pp.UnaryExpr):
        inner = _constant(node.expr)
        return None if inner is None else -inner
    if isinstance(node, pp.BinaryExpr) and str(node.op) in ARITHMETIC:
        lhs, rhs = _constant(node.lhs), _constant(node.rhs)
        if lhs is None or rhs is None:
            return None
        with np.errstate(all="ignore"):
            result = ARITHMETIC[str(node.op)](np.array([lhs]), np.array([rhs]))
        return float(result[0])
    return None


def _runs(ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """At each place in sorted ids, how many places from there on have that id."""
    if not len(ids):
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    lengths = np.diff(np.r_[starts, len(ids)])
    return np.repeat(lengths, lengths) - (np.arange(len(ids)) - np.repeat(starts, lengths))


def passes(
    ops: npt.NDArray[np.int8], values: npt.NDArray[np.float64], limits: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """Whether each value passes its comparison (OPS[op]) with its limit, as PromQL's filter
    does; a staleness marker never passes (the series is gone)."""
    out = np.zeros(len(values), dtype=bool)
    with np.errstate(invalid="ignore"):
        for code, name in enumerate(OPS):
            chosen = ops == code
            if chosen.any():
                out[chosen] = COMPARISON[name](values[chosen], limits[chosen])
    return out & ~is_stale(values)


@dataclass
class _MetricRules:
    """The watching rules of one metric, found from a new series' labels: by one equality
    matcher of each rule where it has one, so a new series is checked against few rules."""

    by_label: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    others: set[int] = field(default_factory=set)

    @staticmethod
    def _label(threshold: Threshold) -> tuple[str, str] | None:
        for m in threshold.matchers:
            if m.name != METRIC_NAME and m.op is MatchOp.EQUAL and m.value:
                return (m.name, m.value)
        return None

    def add(self, rule: int, threshold: Threshold) -> None:
        label = self._label(threshold)
        (self.others if label is None else self.by_label.setdefault(label, set())).add(rule)

    def remove(self, rule: int, threshold: Threshold) -> None:
        label = self._label(threshold)
        (self.others if label is None else self.by_label.get(label, set())).discard(rule)

    def candidates(self, labels: Labels) -> set[int]:
        found = set(self.others)
        for pair in labels:
            found |= self.by_label.get(pair, set())
        return found


class ArrivalTriggers:
    """One tenant's watches. Called with each append's arrivals (on the appending thread); when
    a watched series' newest sample changes whether it passes its rule's threshold, calls
    `trigger` with the keys of the rules concerned. A series created later is watched from its
    first sample, by every rule whose selector it matches."""

    def __init__(
        self,
        tenant: str,
        lookback_ms: int,
        trigger: Callable[[list[RuleKey]], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tenant = tenant
        self.lookback_ms = lookback_ms
        self._trigger = trigger
        self._clock = clock
        self._lock = threading.Lock()
        self._ids: dict[RuleKey, int] = {}
        self._keys: dict[int, RuleKey] = {}
        self._thresholds: dict[int, Threshold] = {}
        self._metrics: dict[str, _MetricRules] = {}
        self._next_rule = 0
        self._created = 0  # appends whose new series were watched, for mark()
        # Entry e: series _sid[e] watched by rule _rule[e]; whether its newest sample passes
        # and that sample's time; _added[e]: mark() when a new series added it (0: looked up).
        # _by_sid orders the entries by series id, for finding the arrivals' entries.
        self._sid = np.zeros(0, dtype=np.int64)
        self._rule = np.zeros(0, dtype=np.int64)
        self._op = np.zeros(0, dtype=np.int8)
        self._limit = np.zeros(0, dtype=np.float64)
        self._passing = np.zeros(0, dtype=bool)
        self._newest = np.zeros(0, dtype=np.int64)
        self._added = np.zeros(0, dtype=np.int64)
        self._by_sid = np.zeros(0, dtype=np.int64)
        self._sorted_sid = np.zeros(0, dtype=np.int64)
        self._run = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        """Watched (rule, series) pairs."""
        return len(self._sid)

    def watching(self, key: RuleKey) -> bool:
        return key in self._ids

    def mark(self, rules: Sequence[tuple[RuleKey, Threshold]] = ()) -> int:
        """Take before looking these rules' series up, and pass to `watch`: from here on the
        series created are told by arrivals and join the rules (which are registered now, so
        a series created during their first lookup joins them too), and `watch` keeps them."""
        with self._lock:
            for key, threshold in rules:
                self._rule_of(key, threshold)
            return self._created

    def watch(self, updates: Sequence[tuple[RuleKey, Threshold, SeriesNewest]], mark: int) -> None:
        """Watch each rule's series as a lookup (begun after `mark()` gave `mark`) found them,
        keeping the state arrivals gave the series watched already and the series created
        since the mark; a series it no longer finds is gone. A series new to the rule starts
        as not passing: the lookup may have read a sample whose arrival is yet to be told,
        and that arrival must still count as a change (at worst one evaluation too many)."""
        with self._lock:
            rules_of = [self._rule_of(key, threshold) for key, threshold, _ in updates]
            keep = np.ones(len(self._sid), dtype=bool)
            later = self._added > mark
            parts = []
            for rule, (_, _, newest) in zip(rules_of, updates, strict=True):
                ids = newest.series_ids
                mine = self._rule == rule
                keep &= ~mine | later | np.isin(self._sid, ids)
                fresh = ~np.isin(ids, self._sid[mine])
                rules = np.full(int(fresh.sum()), rule, dtype=np.int64)
                parts.append(self._entries(ids[fresh], rules, None, newest.timestamps[fresh], 0))
            self._replace(keep, parts)

    def _rule_of(self, key: RuleKey, threshold: Threshold) -> int:
        """The rule's number; a key watched with another threshold before starts afresh."""
        rule = self._ids.get(key)
        if rule is not None and self._thresholds[rule] != threshold:
            self._drop([key])
            rule = None
        if rule is None:
            rule = self._ids[key] = self._next_rule
            self._next_rule += 1
            self._keys[rule] = key
            self._thresholds[rule] = threshold
            self._metrics.setdefault(threshold.metric, _MetricRules()).add(rule, threshold)
        return rule

    def _entries(
        self,
        ids: npt.NDArray[np.int64],
        rules: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64] | None,
        times: npt.NDArray[np.int64],
        added: int,
    ) -> tuple[npt.NDArray[Any], ...]:
        """New entries' columns; without values, none passes."""
        thresholds = [self._thresholds[r] for r in rules.tolist()]
        ops = np.array([OPS.index(t.op) for t in thresholds], dtype=np.int8)
        limits = np.array([t.value for t in thresholds], dtype=np.float64)
        passing = np.zeros(len(ids), bool) if values is None else passes(ops, values, limits)
        return (ids, rules, ops, limits, passing, times, np.full(len(ids), added, np.int64))

    def forget(self, keys: Sequence[RuleKey]) -> None:
        with self._lock:
            self._drop(keys)

    def _drop(self, keys: Sequence[RuleKey]) -> None:
        rules = []
        for key in keys:
            rule = self._ids.pop(key, None)
            if rule is None:
                continue
            del self._keys[rule]
            threshold = self._thresholds.pop(rule)
            index = self._metrics[threshold.metric]
            index.remove(rule, threshold)
            if not index.others and not any(index.by_label.values()):
                del self._metrics[threshold.metric]
            rules.append(rule)
        if rules:
            self._replace(~np.isin(self._rule, rules), [])

    def __call__(self, arrivals: Arrivals) -> None:
        if arrivals.tenant != self.tenant:
            return
        with self._lock:
            if arrivals.new_series:
                self._watch_new(arrivals.new_series)
            changed = self._changed(arrivals)
            keys = [self._keys[r] for r in changed.tolist()]
        if keys:
            self._trigger(keys)

    def _watch_new(self, created: Sequence[tuple[int, Labels]]) -> None:
        """Entries for new series, for each rule whose selector they match; their first sample
        (in the same arrivals) then counts as a change if it passes."""
        sids: list[int] = []
        owners: list[int] = []
        for sid, labels in created:
            index = self._metrics.get(metric_name(labels))
            if index is None:
                continue
            values = dict(labels)
            for rule in index.candidates(labels):
                matchers = self._thresholds[rule].matchers
                if all(m.matches(values.get(m.name, "")) for m in matchers):
                    sids.append(sid)
                    owners.append(rule)
        if not sids:
            return
        # an entry the rule's lookup may have found already (created just before it)
        ids, rules = np.array(sids, dtype=np.int64), np.array(owners, dtype=np.int64)
        left = np.searchsorted(self._sorted_sid, ids, side="left")
        right = np.searchsorted(self._sorted_sid, ids, side="right")
        fresh = [
            i
            for i in range(len(ids))
            if not np.any(self._rule[self._by_sid[left[i] : right[i]]] == rules[i])
        ]
        ids, rules = ids[fresh], rules[fresh]
        self._created += 1
        # no sample yet: the arrivals' first one is a change if it passes
        times = np.full(len(ids), INT64_MIN, dtype=np.int64)
        part = self._entries(ids, rules, None, times, self._created)
        self._replace(np.ones(len(self._sid), dtype=bool), [part])

    def _replace(
        self, kept: npt.NDArray[np.bool_], parts: list[tuple[npt.NDArray[Any], ...]]
    ) -> None:
        columns: list[npt.NDArray[Any]] = [
            self._sid,
            self._rule,
            self._op,
            self._limit,
            self._passing,
            self._newest,
            self._added,
        ]
        merged: list[npt.NDArray[Any]] = [
            np.concatenate([column[kept]] + [part[i] for part in parts]).astype(column.dtype)
            for i, column in enumerate(columns)
        ]
        fresh, before = merged[0][len(self._sid) :], len(self._sid)
        if kept.all() and (not len(fresh) or not before or fresh.min() > self._sorted_sid[-1]):
            # only series newer than all (ids grow): they go after the others in id order,
            # and the others' runs stand
            order = np.argsort(fresh, kind="stable")
            self._by_sid = np.concatenate([self._by_sid, order + before])
            self._sorted_sid = np.concatenate([self._sorted_sid, fresh[order]])
            self._run = np.concatenate([self._run, _runs(fresh[order])])
        else:
            self._by_sid = np.argsort(merged[0], kind="stable")
            self._sorted_sid = merged[0][self._by_sid]
            self._run = _runs(self._sorted_sid)
        self._sid, self._rule, self._op, self._limit = merged[0:4]
        self._passing, self._newest, self._added = merged[4:7]

    def _changed(self, arrivals: Arrivals) -> npt.NDArray[np.int64]:
        """The rules with a series whose passing changed."""
        none = np.zeros(0, dtype=np.int64)
        sorted_sid = self._sorted_sid
        if not len(sorted_sid) or not len(arrivals.series_ids):
            return none
        sids = arrivals.series_ids
        near = np.flatnonzero((sids >= sorted_sid[0]) & (sids <= sorted_sid[-1]))
        if not len(near):
            return none
        left = np.searchsorted(sorted_sid, sids[near])
        found = sorted_sid[left] == sids[near]  # in range: left < len(sorted_sid)
        if not found.any():
            return none
        near, left = near[found], left[found]
        # a series twice in the append (its newest sample counts): arrivals come in id order
        # as a rule (a writer sends its series in the order they were first seen)
        matched = sids[near]
        twice = len(matched) > 1 and not bool((np.diff(matched) > 0).all())
        if twice:
            ordered = np.sort(matched)
            twice = bool((ordered[1:] == ordered[:-1]).any())
        counts = self._run[left]  # the entries watching the series: a run from `left`
        # one row per (arrival, entry watching its series)
        if counts.max() == 1:
            rows, entries = near, self._by_sid[left]
        else:
            rows = np.repeat(near, counts)
            first = np.repeat(left - (np.cumsum(counts) - counts), counts)
            entries = self._by_sid[first + np.arange(len(rows))]
        ts, values = arrivals.timestamps[rows], arrivals.values[rows]
        newer = ts >= self._newest[entries]
        if not newer.all():
            entries, ts, values = entries[newer], ts[newer], values[newer]
        if not len(entries):
            return none
        if twice:
            order = np.lexsort((ts, entries))
            entries, ts, values = entries[order], ts[order], values[order]
            last = np.r_[entries[1:] != entries[:-1], True]
            entries, ts, values = entries[last], ts[last], values[last]
        # a sample the lookback delta or more before now is in no evaluation's answer (a
        # backlog being sent): it passes nothing, so the sample that brings the series back
        # counts as the change
        visible = ts > int(self._clock() * 1000) - self.lookback_ms
        now = passes(self._op[entries], values, self._limit[entries]) & visible
        # what the rule saw: the previous sample passed and is within the lookback delta
        before = self._passing[entries] & (self._newest[entries] > ts - self.lookback_ms)
        self._passing[entries] = now
        self._newest[entries] = ts
        return np.unique(self._rule[entries[now != before]])
