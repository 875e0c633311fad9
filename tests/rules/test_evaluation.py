"""Rule evaluation over the real store and PromQL engine: Prometheus' alert state machine
(pending, firing, resolved; for, keep_firing_for), ALERTS and ALERTS_FOR_STATE with staleness,
recording rules, and the errors a rule reports as its health."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from watchkeeper.model import SeriesBatch, labels_from_dict
from watchkeeper.promql import Engine, StoreQuerier
from watchkeeper.rules import parse_groups
from watchkeeper.rules.alerting import AlertState
from watchkeeper.rules.group import GroupEvaluator, RestoreOptions
from watchkeeper.store import MetricsDB, StorageOptions

MINUTE = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % (60 * MINUTE)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetricsDB]:
    db = MetricsDB(tmp_path, StorageOptions(retention_ms=10**10, block_duration_ms=120 * MINUTE))
    db.open()
    # up{instance="a"}: 1, then 0 from minute 3 to 7, then 1; up{instance="b"}: always 1
    rows = []
    for step in range(0, 20 * 4):
        at = T0 + step * 15_000
        down = 3 * MINUTE <= at - T0 < 7 * MINUTE
        rows.append(
            (
                labels_from_dict({"__name__": "up", "job": "api", "instance": "a"}),
                at,
                0.0 if down else 1.0,
            )
        )
        rows.append((labels_from_dict({"__name__": "up", "job": "api", "instance": "b"}), at, 1.0))
        rows.append((labels_from_dict({"__name__": "broken", "instance": "c"}), at, 1.0))
    db.append("default", SeriesBatch.from_samples(rows))
    yield db
    db.close()


def _group(store: MetricsDB, text: str) -> GroupEvaluator:
    (group,) = parse_groups(text, "test.yml")
    return GroupEvaluator(group, Engine(), store, "default", (("cluster", "eu"),), "http://wk")


def _query(store: MetricsDB, query: str, at: int) -> dict[str, float]:
    result = Engine().instant_query(StoreQuerier(store, "default"), query, at)
    return {
        ",".join(f"{k}={v}" for k, v in s.labels if k != "__name__"): float(s.values[0])
        for s in result.series
    }


ALERT = """
groups:
  - name: g
    rules:
      - alert: InstanceDown
        expr: up == 0
        for: 2m
        labels: {severity: page, summary_instance: "{{ $labels.instance }}"}
        annotations:
          summary: "{{ $labels.instance }} of {{ $labels.job }} down ({{ $value }}) in {{ $externalLabels.cluster }}"
"""  # noqa: E501


def test_pending_firing_resolved(store: MetricsDB) -> None:
    group = _group(store, ALERT)
    rule = group.rules[0].alerting
    assert rule is not None
    states = []
    for minute in range(1, 11):
        group.evaluate(T0 + minute * MINUTE)
        states.append([a.state.value for a in rule.alerts.values()])
    assert states == [
        [], [], ["pending"], ["pending"], ["firing"], ["firing"],
        ["inactive"], ["inactive"], ["inactive"], ["inactive"],
    ]  # fmt: skip
    (alert,) = rule.alerts.values()
    assert dict(alert.labels) == {
        "alertname": "InstanceDown",
        "instance": "a",
        "job": "api",
        "severity": "page",
        "summary_instance": "a",
    }
    assert dict(alert.annotations) == {"summary": "a of api down (0) in eu"}
    assert (alert.active_at_ms, alert.fired_at_ms, alert.resolved_at_ms) == (
        T0 + 3 * MINUTE,
        T0 + 5 * MINUTE,
        T0 + 7 * MINUTE,
    )
    assert group.rules[0].status.health == "ok"


def test_alerts_series_and_their_staleness(store: MetricsDB) -> None:
    group = _group(store, ALERT)
    for minute in range(1, 9):
        group.evaluate(T0 + minute * MINUTE)
    rest = "instance=a,job=api,severity=page,summary_instance=a"
    labels = f"alertname=InstanceDown,{rest}"
    pending = f"alertname=InstanceDown,alertstate=pending,{rest}"
    firing = f"alertname=InstanceDown,alertstate=firing,{rest}"
    assert _query(store, "ALERTS", T0 + 4 * MINUTE) == {pending: 1.0}
    assert _query(store, "ALERTS", T0 + 5 * MINUTE) == {firing: 1.0}
    # the pending series went stale when the alert fired, the firing one when it resolved
    assert _query(store, 'ALERTS{alertstate="pending"}', T0 + 5 * MINUTE) == {}
    assert _query(store, "ALERTS", T0 + 7 * MINUTE) == {}
    assert _query(store, "ALERTS_FOR_STATE", T0 + 6 * MINUTE) == {labels: (T0 + 3 * MINUTE) / 1000}


def test_keep_firing_for(store: MetricsDB) -> None:
    group = _group(store, ALERT.replace("for: 2m", "for: 0s\n        keep_firing_for: 2m"))
    rule = group.rules[0].alerting
    assert rule is not None
    states = []
    for minute in range(3, 11):
        group.evaluate(T0 + minute * MINUTE)
        states.append([a.state for a in rule.alerts.values()])
    firing, inactive = [AlertState.FIRING], [AlertState.INACTIVE]
    # fires at once, stays firing two minutes after its condition went (7m), then resolves
    assert states == [firing, firing, firing, firing, firing, firing, inactive, inactive]


def test_recording_rules_and_rule_order(store: MetricsDB) -> None:
    group = _group(
        store,
        """
groups:
  - name: g
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
        labels: {team: core}
      - alert: FewUp
        expr: job:up:sum < 2
      - record: answer
        expr: "42"
""",
    )
    group.evaluate(T0 + 4 * MINUTE)
    assert _query(store, "job:up:sum", T0 + 4 * MINUTE) == {"job=api,team=core": 1.0}
    # the alert saw the series the rule before it recorded at the same evaluation
    alerting = group.rules[1].alerting
    assert alerting is not None and [a.state for a in alerting.alerts.values()] == [
        AlertState.FIRING
    ]
    assert _query(store, "answer", T0 + 4 * MINUTE) == {"": 42.0}
    group.evaluate(T0 + 8 * MINUTE)
    assert _query(store, "job:up:sum", T0 + 8 * MINUTE) == {"job=api,team=core": 2.0}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "      - record: r\n        expr: up\n        labels: {instance: x}",
            "vector contains metrics with the same labelset after applying rule labels",
        ),
        ("      - record: r\n        expr: up\n", "exceeded limit of 1 with 2 series"),
        ("      - record: r\n        expr: '\"text\"'", "rule result is not a vector or scalar"),
    ],
)
def test_a_failing_rule_reports_its_error(store: MetricsDB, text: str, error: str) -> None:
    limit = "    limit: 1\n" if "limit" in error else ""
    group = _group(store, f"groups:\n  - name: g\n{limit}    rules:\n{text}\n")
    group.evaluate(T0 + MINUTE)
    status = group.rules[0].status
    assert (status.health, status.last_error) == ("err", error)
    assert _query(store, "r", T0 + MINUTE) == {}


def test_a_template_that_fails_to_run_shows_its_error(store: MetricsDB) -> None:
    group = _group(store, ALERT.replace("{{ $value }}", "{{ $value.X }}"))
    group.evaluate(T0 + 4 * MINUTE)
    alerting = group.rules[0].alerting
    assert alerting is not None
    (alert,) = alerting.alerts.values()
    assert dict(alert.annotations)["summary"].startswith("<error expanding template: ")


RESTORED = """
groups:
  - name: g
    rules:
      - alert: Broken
        expr: broken == 1
        for: 6m
"""


@pytest.mark.parametrize(
    ("grace", "active_at", "fires_at"),
    [
        # 4 min of pending were left when the server stopped at 3m, and it was down 2 min:
        # the pending time picks up where it was (the active time moves on by the 2 min)
        (1, 3, 9),
        # less than the grace period was left: it waits the grace period from the restart
        (5, 4, 10),
    ],
)
@pytest.mark.parametrize("first_by", ["turn", "arrival"])
def test_for_state_is_restored_after_a_restart(
    store: MetricsDB, grace: int, active_at: int, fires_at: int, first_by: str
) -> None:
    """The same whether the rule's first evaluation after the restart is its group's turn or
    an evaluation on arrival (rules/on_arrival.py) before it."""
    first = _group(store, RESTORED)
    for minute in (1, 2, 3):
        first.evaluate(T0 + minute * MINUTE)  # pending since 1m
    # the server is down for minutes 4 and 5, then starts again
    (group,) = parse_groups(RESTORED, "test.yml")
    restore = RestoreOptions(outage_tolerance_ms=60 * MINUTE, grace_period_ms=grace * MINUTE)
    again = GroupEvaluator(group, Engine(), store, "default", restore=restore)
    rule = again.rules[0].alerting
    assert rule is not None and not rule.restored
    fired = None
    for minute in range(5, 13):
        if minute == 5 and first_by == "arrival":
            assert again.evaluate_rules([0], T0 + minute * MINUTE) == 1
        else:
            again.evaluate(T0 + minute * MINUTE)
        (alert,) = rule.alerts.values()
        if minute == 5:
            assert alert.active_at_ms == T0 + active_at * MINUTE
        if alert.state is AlertState.FIRING and fired is None:
            fired = minute
    assert fired == fires_at
    assert rule.restored
