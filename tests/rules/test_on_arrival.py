"""Evaluation on arrival: which rules qualify, when an arriving sample changes a rule's answer,
and the rules manager evaluating such a rule (and sending its alert) between its turns."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import promql_parser as pp
import pytest

from watchkeeper.model import Matcher, MatchOp, SeriesBatch, labels_from_dict
from watchkeeper.model.alerts import Alert as Notice
from watchkeeper.promql import Engine
from watchkeeper.rules import parse_groups
from watchkeeper.rules.group import GroupEvaluator
from watchkeeper.rules.manager import RuleManager, RulesOptions, group_offset_ms
from watchkeeper.rules.on_arrival import ArrivalTriggers, RuleKey, Threshold, threshold_of
from watchkeeper.store import MetricsDB, StorageOptions
from watchkeeper.store.arrivals import Arrivals, SeriesNewest

STALE = np.uint64(0x7FF0000000000002).view(np.float64)
T0 = 1_700_000_000_000
LOOKBACK = 300_000
HOUR = 3_600_000


def _up(instance: str = "") -> tuple[Matcher, ...]:
    name = (Matcher("__name__", MatchOp.EQUAL, "up"),)
    return name + ((Matcher("instance", MatchOp.EQUAL, instance),) if instance else ())


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('up{instance="a"} == 0', Threshold(_up("a"), "==", 0.0)),
        ("(up) < 1", Threshold(_up(), "<", 1.0)),
        ("0.5 < up", Threshold(_up(), ">", 0.5)),  # the number first: the operator mirrored
        ("2 >= ((up))", Threshold(_up(), "<=", 2.0)),
        ("up != -(1024 * 2)", Threshold(_up(), "!=", -2048.0)),
        ("up > bool 0", None),  # a value for every series, not a filter
        ("sum(up) > 1", None),
        ("rate(up[5m]) > 1", None),
        ("up offset 5m > 1", None),
        ("up @ 100 > 1", None),
        ('{__name__=~"u.*"} > 1', None),  # no metric name to watch
        ("up > on() group_left vector(1)", None),
        ("up > up", None),
        ("up + 1 > 2", None),
        ("up", None),
    ],
)
def test_which_expressions_are_thresholds(expr: str, expected: Threshold | None) -> None:
    assert threshold_of(pp.parse(expr)) == expected


class Triggered:
    def __init__(self) -> None:
        self.keys: list[list[RuleKey]] = []

    def __call__(self, keys: list[RuleKey]) -> None:
        self.keys.append(sorted(keys))

    def take(self) -> list[RuleKey]:
        out = sorted({k for keys in self.keys for k in keys})
        self.keys.clear()
        return out


def _newest(ids: list[int], at: list[int], values: list[float]) -> SeriesNewest:
    return SeriesNewest(
        np.array(ids, dtype=np.int64), np.array(at, dtype=np.int64), np.array(values)
    )


def _arrive(
    triggers: ArrivalTriggers, samples: list[tuple[int, int, float]], tenant: str = "t"
) -> None:
    ids, at, values = zip(*samples, strict=True) if samples else ((), (), ())
    triggers(
        Arrivals(
            tenant,
            np.array(ids, dtype=np.int64),
            np.array(at, dtype=np.int64),
            np.array(values, dtype=np.float64),
        )
    )


DOWN: RuleKey = ("f", "g", 0)
HOT: RuleKey = ("f", "g", 1)
NOW_S = (T0 + 60_000) / 1000  # the triggers' clock: a minute after T0


def _watching(fired: Triggered) -> ArrivalTriggers:
    return ArrivalTriggers("t", LOOKBACK, fired, clock=lambda: NOW_S)


@pytest.fixture
def triggers() -> tuple[ArrivalTriggers, Triggered]:
    fired = Triggered()
    watches = _watching(fired)
    # DOWN: up == 0 over series 10 (up now) and 11 (down now); HOT: up > 5 over 11 and 12
    watches.watch(
        [
            (DOWN, Threshold(_up(), "==", 0.0), _newest([10, 11], [T0, T0], [1.0, 0.0])),
            (HOT, Threshold(_up(), ">", 5.0), _newest([11, 12], [T0, T0], [0.0, 9.0])),
        ],
        watches.mark(),
    )
    # Series new to a rule start as not passing: the lookup may have read a sample whose
    # arrival is yet to be told, which must still count. So their first passing arrival
    # evaluates the rule once more than needed.
    _arrive(watches, [(10, T0, 1.0), (11, T0, 0.0), (12, T0, 9.0)])
    assert fired.take() == [DOWN, HOT]
    return watches, fired


def test_a_sample_that_changes_the_answer_triggers_its_rules(
    triggers: tuple[ArrivalTriggers, Triggered],
) -> None:
    watches, fired = triggers
    assert len(watches) == 4
    _arrive(watches, [(10, T0 + 1, 1.0), (11, T0 + 1, 0.0), (12, T0 + 1, 8.0), (99, T0, 0.0)])
    assert fired.take() == []  # nothing changed sides; series 99 is not watched
    _arrive(watches, [(10, T0 + 2, 0.0)])
    assert fired.take() == [DOWN]  # crossed
    _arrive(watches, [(10, T0 + 3, 0.0)])
    assert fired.take() == []  # still down: the rule has it already
    _arrive(watches, [(11, T0 + 4, 7.0)])
    assert fired.take() == [DOWN, HOT]  # one series, two rules, both answers changed
    _arrive(watches, [(12, T0 + 5, STALE)])
    assert fired.take() == [HOT]  # a staleness marker: the series left the answer
    _arrive(watches, [(10, T0 + 6, 1.0)], tenant="other")
    assert fired.take() == []  # another tenant's series


def test_only_the_newest_sample_of_a_series_counts(
    triggers: tuple[ArrivalTriggers, Triggered],
) -> None:
    watches, fired = triggers
    # within one append: down then up again, out of time order; the newest (up) counts
    _arrive(watches, [(10, T0 + 20, 1.0), (10, T0 + 10, 0.0)])
    assert fired.take() == []
    # an older sample than the newest seen says nothing about now
    _arrive(watches, [(10, T0 + 15, 0.0)])
    assert fired.take() == []


def test_a_sample_older_than_the_lookback_delta_was_not_in_the_answer() -> None:
    fired = Triggered()
    clock = [NOW_S]
    watches = ArrivalTriggers("t", LOOKBACK, fired, clock=lambda: clock[0])
    watches.watch([(DOWN, Threshold(_up(), "==", 0.0), _newest([11], [T0], [1.0]))], 0)
    _arrive(watches, [(11, T0, 0.0)])
    assert fired.take() == [DOWN]
    # down again after more than the lookback delta: in between the series was gone from the
    # answer, so this brings it back
    clock[0] = (T0 + LOOKBACK + 60_000) / 1000
    _arrive(watches, [(11, T0 + LOOKBACK + 1, 0.0)])
    assert fired.take() == [DOWN]
    _arrive(watches, [(11, T0 + LOOKBACK + 2, 0.0)])
    assert fired.take() == []
    # a backlog arriving late: samples a lookback delta or more before now are in no answer,
    # so the recent one that brings the series back is the change
    clock[0] = (T0 + 3 * LOOKBACK) / 1000
    _arrive(watches, [(11, T0 + LOOKBACK + 3, 1.0)])  # old: not visible either way
    assert fired.take() == [DOWN]  # (it did leave the answer: the rule looks, finds nothing)
    _arrive(watches, [(11, T0 + LOOKBACK + 4, 0.0)])  # old, down: still not visible
    assert fired.take() == []
    _arrive(watches, [(11, T0 + 3 * LOOKBACK - 1000, 0.0)])  # recent, down
    assert fired.take() == [DOWN]


def _created(triggers: ArrivalTriggers, sid: int, value: float, **labels: str) -> None:
    triggers(
        Arrivals(
            "t",
            np.array([sid], dtype=np.int64),
            np.array([T0 + 100], dtype=np.int64),
            np.array([value]),
            ((sid, labels_from_dict({"__name__": "up", **labels})),),
        )
    )


def test_a_new_series_is_watched_by_the_rules_it_matches_from_its_first_sample() -> None:
    fired = Triggered()
    watches = _watching(fired)
    api_down = ("f", "g", 2)
    watches.watch(
        [
            (DOWN, Threshold(_up(), "==", 0.0), SeriesNewest.empty()),
            (HOT, Threshold(_up(), ">", 5.0), SeriesNewest.empty()),
            (api_down, Threshold((*_up(), Matcher("job", MatchOp.EQUAL, "api")), "==", 0.0),
             SeriesNewest.empty()),
        ],
        watches.mark(),
    )  # fmt: skip
    assert len(watches) == 0
    _created(watches, 20, 0.0, job="api", instance="a")
    assert fired.take() == [DOWN, api_down]  # its first sample is in both rules' answers
    _created(watches, 21, 1.0, job="web", instance="b")
    assert fired.take() == []
    assert len(watches) == 3 + 2  # 20 by all three rules, 21 by the two without a job
    _arrive(watches, [(21, T0 + 200, 9.0)])
    assert fired.take() == [HOT]
    # another metric's new series
    watches(
        Arrivals("t", np.array([22]), np.array([T0]), np.array([0.0]),
                 ((22, labels_from_dict({"__name__": "down", "job": "api"})),))
    )  # fmt: skip
    assert fired.take() == [] and len(watches) == 5


def test_a_series_created_during_a_rules_first_lookup_joins_it() -> None:
    fired = Triggered()
    watches = _watching(fired)
    down = Threshold(_up(), "==", 0.0)
    mark = watches.mark([(DOWN, down)])  # the rule is registered before its lookup
    _created(watches, 7, 1.0, instance="x")  # created (and told) while the lookup runs
    watches.watch([(DOWN, down, SeriesNewest.empty())], mark)  # the lookup missed it
    _arrive(watches, [(7, T0 + 200, 0.0)])
    assert fired.take() == [DOWN]


def test_a_series_a_lookup_found_before_its_creation_was_told_still_triggers() -> None:
    fired = Triggered()
    watches = _watching(fired)
    down = Threshold(_up(), "==", 0.0)
    watches.watch([(DOWN, down, SeriesNewest.empty())], watches.mark([(DOWN, down)]))
    # the lookup found series 9 (created, its first sample down) before its arrival was told
    watches.watch([(DOWN, down, _newest([9], [T0 + 100], [0.0]))], watches.mark())
    _created(watches, 9, 0.0, instance="y")  # T0 + 100, the sample the lookup read
    assert fired.take() == [DOWN] and len(watches) == 1


def test_looking_series_up_again_keeps_their_state_and_those_created_meanwhile(
    triggers: tuple[ArrivalTriggers, Triggered],
) -> None:
    watches, fired = triggers
    down = Threshold(_up(), "==", 0.0)
    mark = watches.mark()
    # while DOWN's series are looked up again: 30 is created (and down), 11 is dropped
    _created(watches, 30, 0.0, instance="c")
    assert fired.take() == [DOWN]
    # the lookup read 10's newest sample (down) before its arrival was told
    watches.watch([(DOWN, down, _newest([10], [T0 + 150], [0.0]))], mark)
    assert len(watches) == 2 + 2 + 1  # DOWN: 10 and 30; HOT: 11, 12 and 30 (not > 5)
    _arrive(watches, [(10, T0 + 150, 0.0)])
    assert fired.take() == [DOWN]  # still a change: the arrivals' state of 10 was kept
    _arrive(watches, [(30, T0 + 200, 1.0)])
    assert fired.take() == [DOWN]  # 30 still watched, with its state
    _arrive(watches, [(11, T0 + 200, 0.0), (12, T0 + 200, 9.0)])
    assert fired.take() == []  # 11 no longer watched by DOWN
    # a lookup that found a series created just before it: watched once
    mark = watches.mark()
    watches.watch([(DOWN, down, _newest([10, 30], [T0] * 2, [1, 1]))], mark)
    assert len(watches) == 5
    watches.forget([DOWN])
    _arrive(watches, [(30, T0 + 300, 0.0), (10, T0 + 300, 0.0)])
    assert fired.take() == []
    assert len(watches) == 3


def test_a_rule_watched_again_with_another_threshold_starts_afresh() -> None:
    fired = Triggered()
    watches = _watching(fired)
    watches.watch([(DOWN, Threshold(_up(), "==", 0.0), _newest([3], [T0], [1.0]))], 0)
    watches.watch([(DOWN, Threshold(_up(), ">", 5.0), _newest([3], [T0], [1.0]))], 0)
    _arrive(watches, [(3, T0 + 1, 0.0)])
    assert fired.take() == []  # no longer == 0
    _arrive(watches, [(3, T0 + 2, 9.0)])
    assert fired.take() == [DOWN]


def test_a_regex_on_the_name_does_not_hide_the_metric() -> None:
    threshold = threshold_of(pp.parse('{__name__=~"u.*", __name__="up"} == 0'))
    assert threshold is not None and threshold.metric == "up"


# --- evaluation between turns -------------------------------------------------------------

RULES = """
groups:
  - name: g
    interval: 1h
    rules:
      - record: up:sum
        expr: sum(up)
      - alert: InstanceDown
        expr: up == 0
        labels: {severity: page}
      - alert: Summed
        expr: sum(up) == 0
      - alert: RecordedLow
        expr: up:sum < 1
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetricsDB]:
    db = MetricsDB(tmp_path, StorageOptions(retention_ms=10**10, block_duration_ms=7_200_000))
    db.open()
    yield db
    db.close()


def _write(store: MetricsDB, at: int, **instances: float) -> None:
    store.append(
        "default",
        SeriesBatch.from_samples(
            [
                (labels_from_dict({"__name__": "up", "instance": i}), at, v)
                for i, v in instances.items()
            ]
        ),
    )


def test_which_rules_of_a_group_are_evaluated_on_arrival(store: MetricsDB) -> None:
    (group,) = parse_groups(RULES, "rules.yml")
    evaluator = GroupEvaluator(group, Engine(), store, "default")
    # not the recording rule, not an aggregation, not a rule on what the group records
    assert evaluator.thresholds() == {1: Threshold(_up(), "==", 0.0)}
    offset = parse_groups(RULES.replace("interval: 1h", "query_offset: 1m"), "r.yml")[0]
    assert GroupEvaluator(offset, Engine(), store, "default").thresholds() == {}


def test_a_rule_evaluated_between_turns_is_left_alone_by_an_older_turn(store: MetricsDB) -> None:
    (group,) = parse_groups(RULES, "rules.yml")
    evaluator = GroupEvaluator(group, Engine(), store, "default")
    _write(store, T0, a=0.0)
    assert evaluator.evaluate_rules([1], T0 + 10) == 1
    rule = evaluator.rules[1]
    assert rule.alerting is not None
    (alert,) = rule.alerting.alerts.values()
    assert alert.active_at_ms == T0 + 10
    assert evaluator.evaluate_rules([1], T0 + 10) == 0  # evaluated at that instant already
    evaluator.evaluate(T0 + 5)  # a turn for an earlier instant, run late
    assert rule.status.last_evaluation_ms == T0 + 10
    assert evaluator.rules[0].status.last_evaluation_ms == T0 + 5
    evaluator.evaluate(T0 + 60_000)
    assert rule.status.last_evaluation_ms == T0 + 60_000
    (alert,) = rule.alerting.alerts.values()
    assert alert.active_at_ms == T0 + 10


def _manager(store: MetricsDB, sent: list[tuple[float, Notice]], on: bool) -> RuleManager:
    lock = threading.Lock()

    def notify(tenant: str, alerts: list[Notice]) -> None:
        with lock:
            sent.extend((time.time(), a) for a in alerts)

    options = RulesOptions(workers=1, evaluate_on_arrival=on, lookback_delta_ms=LOOKBACK)
    return RuleManager(Engine(), store, options, notify=notify)


async def _wait_for(sent: list[tuple[float, Notice]], count: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while len(sent) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def _rules_far_from_their_turn(path: Path) -> None:
    """RULES, its group named so that its hourly turn is not in the next minutes."""
    now = time.time() * 1000 % HOUR
    for n in range(100):
        (group,) = parse_groups(RULES.replace("name: g", f"name: g{n}"), str(path))
        if (group_offset_ms(group, HOUR) - now) % HOUR > 10 * 60_000:
            path.write_text(RULES.replace("name: g", f"name: g{n}"))
            return
    raise AssertionError("no group name found")


@pytest.mark.timeout(60)
def test_an_alert_fires_and_resolves_as_its_sample_arrives(
    store: MetricsDB, tmp_path: Path
) -> None:
    _rules_far_from_their_turn(tmp_path / "rules.yml")
    sent: list[tuple[float, Notice]] = []

    async def run() -> list[float]:
        # the group's turns are an hour apart: only arrivals can make it fire in this test
        now = int(time.time() * 1000)
        _write(store, now, a=1.0, b=1.0)
        manager = _manager(store, sent, on=True)
        await manager.apply([str(tmp_path / "rules.yml")])
        latencies = []
        try:
            await asyncio.sleep(0.2)
            assert sent == []
            written = time.time()
            await asyncio.to_thread(_write, store, int(written * 1000), a=0.0)
            await _wait_for(sent, 1, 5)
            ((at, fired),) = sent
            latencies.append(at - written)
            assert dict(fired.labels) == {"alertname": "InstanceDown", "instance": "a",
                                          "severity": "page"}  # fmt: skip
            assert fired.starts_at_ms >= int(written * 1000)
            # b stays up, a stays down: nothing more to say
            await asyncio.to_thread(_write, store, int(time.time() * 1000), a=0.0, b=1.0)
            await asyncio.sleep(0.3)
            assert len(sent) == 1
            written = time.time()
            await asyncio.to_thread(_write, store, int(written * 1000), a=1.0)
            await _wait_for(sent, 2, 5)
            at, resolved = sent[1]
            latencies.append(at - written)
            assert resolved.labels == fired.labels
            assert resolved.ends_at_ms <= int(at * 1000)  # resolved, not firing until later
            (running,) = manager._groups.values()
            assert running.evaluator.last_evaluation_ms == 0  # no turn came meanwhile
        finally:
            await manager.stop()
        return latencies

    latencies = asyncio.run(run())
    assert max(latencies) < 2.0  # an hour's interval, yet well within the second


@pytest.mark.timeout(60)
def test_without_evaluation_on_arrival_rules_wait_for_their_turn(
    store: MetricsDB, tmp_path: Path
) -> None:
    _rules_far_from_their_turn(tmp_path / "rules.yml")
    sent: list[tuple[float, Notice]] = []

    async def run() -> None:
        _write(store, int(time.time() * 1000), a=1.0)
        manager = _manager(store, sent, on=False)
        await manager.apply([str(tmp_path / "rules.yml")])
        try:
            await asyncio.to_thread(_write, store, int(time.time() * 1000), a=0.0)
            await asyncio.sleep(1.0)
            assert sent == []
        finally:
            await manager.stop()

    asyncio.run(run())


@pytest.mark.timeout(60)
def test_a_reloaded_rule_watches_by_its_new_threshold(store: MetricsDB, tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    _rules_far_from_their_turn(path)
    sent: list[tuple[float, Notice]] = []

    async def run() -> None:
        _write(store, int(time.time() * 1000), a=1.0)
        manager = _manager(store, sent, on=True)
        await manager.apply([str(path)])
        try:
            path.write_text(path.read_text().replace("expr: up == 0", "expr: up == 2"))
            await manager.apply([str(path)])
            await asyncio.to_thread(_write, store, int(time.time() * 1000), a=0.0)
            await asyncio.sleep(0.5)
            assert sent == []  # the old threshold no longer watches
            await asyncio.to_thread(_write, store, int(time.time() * 1000), a=2.0)
            await _wait_for(sent, 1, 5)
            ((_, fired),) = sent
            assert dict(fired.labels)["instance"] == "a"
        finally:
            await manager.stop()

    asyncio.run(run())
