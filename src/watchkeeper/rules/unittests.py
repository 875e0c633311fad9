"""Rule unit tests in promtool's `test rules` format, run as promtool runs them.

A test file names `rule_files` (relative to it), an `evaluation_interval` and `tests`; each test
group loads its `input_series` (in the expanding notation, native histograms included, one value
per `interval` from the start), evaluates every rule group from the start to the last
`eval_time` every evaluation interval (`group_eval_order` first), and checks at each `eval_time`:
- `alert_rule_test`: the *firing* alerts of `alertname` as they were at the last evaluation
  at or before it, against `exp_alerts` (labels, with `alertname` added, and annotations);
- `promql_expr_test`, after all evaluations: the query's result at `eval_time` against
  `exp_samples` (a `histogram:` compared by its `{{...}}` text, as promtool does).
The output and exit status are promtool's: `Unit Testing:  FILE` then `SUCCESS`, or `FAILED:`
and each difference.
"""

from __future__ import annotations

import glob
import math
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from watchkeeper.model import (
    Labels,
    SeriesBatch,
    format_duration,
    parse_duration,
    yaml_label_text,
)
from watchkeeper.model.gofloat import format_e
from watchkeeper.model.histogram_notation import parse_histogram
from watchkeeper.promql import Engine, QueryError, StoreQuerier, parse_series_selector
from watchkeeper.promql.series_notation import expand_items
from watchkeeper.rules.alerting import AlertState, vector_of
from watchkeeper.rules.group import GroupEvaluator
from watchkeeper.rules.rulefile import RuleFileError, RuleGroup, load_file
from watchkeeper.store import MetricsDB, StorageOptions

_RETENTION_MS = 100 * 365 * 86_400_000


class UnitTestError(ValueError):
    """A test file that cannot be run (not a failing test): the message says why."""


def run_file(
    path: Path,
    run: list[str] | None = None,
    ignore_unknown: bool = False,
    out: Callable[[str], None] = print,
) -> bool:
    """Run one test file, printing as promtool does; True if every test passed.

    `run` keeps the test groups whose name one of the regexes matches (promtool's --run);
    `ignore_unknown` loads rule files with keys the format does not know.
    """
    try:
        pattern = re.compile("|".join(run)) if run else None
    except re.error as err:
        raise UnitTestError(f"invalid --run regex: {err}") from None
    out(f"Unit Testing:  {path}")
    try:
        errors = _run(path, pattern, ignore_unknown)
    except (UnitTestError, RuleFileError) as err:
        errors = [str(err)]
    if errors:
        out("  FAILED:")
        for error in errors:
            out(error)
        out("")
        return False
    out("  SUCCESS")
    out("")
    return True


def _run(path: Path, run: re.Pattern[str] | None, ignore_unknown: bool) -> list[str]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise UnitTestError(f"cannot read {path}: {err}") from None
    if not isinstance(raw, Mapping):
        raise UnitTestError(f"{path}: not a rule test file")
    interval = _duration(raw.get("evaluation_interval"), 60_000)
    files = []
    for pattern in raw.get("rule_files") or []:
        found = sorted(glob.glob(str(path.parent / pattern)))
        files.extend(found or [str(path.parent / pattern)])
    groups: list[RuleGroup] = []
    for name in files:
        groups.extend(load_file(Path(name), ignore_unknown=ignore_unknown))
    order = list(raw.get("group_eval_order") or [])
    groups.sort(key=lambda g: order.index(g.name) if g.name in order else len(order))
    errors: list[str] = []
    for test in raw.get("tests") or []:
        if run is not None and not run.search(str(test.get("name") or "")):
            continue
        errors.extend(_run_group(test, groups, interval, bool(raw.get("fuzzy_compare"))))
    return errors


def _run_group(
    test: Mapping[str, Any], groups: list[RuleGroup], eval_interval: int, fuzzy: bool
) -> list[str]:
    series_interval = _duration(test.get("interval"), eval_interval)
    start = _start(test.get("start_timestamp"))
    name = str(test.get("name") or "")
    prefix = f"    name: {name},\n" if name else ""
    directory = Path(tempfile.mkdtemp(prefix="rules-test-"))
    store = MetricsDB(
        directory, StorageOptions(retention_ms=_RETENTION_MS, block_duration_ms=_RETENTION_MS)
    )
    store.open()
    try:
        _load(store, test.get("input_series") or [], start, series_interval)
        engine = Engine()
        external = tuple(
            sorted((str(k), str(v)) for k, v in (test.get("external_labels") or {}).items())
        )
        evaluators = [
            GroupEvaluator(
                group, engine, store, "default", external, str(test.get("external_url") or "")
            )
            for group in groups
        ]
        alert_tests = list(test.get("alert_rule_test") or [])
        expr_tests = list(test.get("promql_expr_test") or [])
        times = [_duration(t.get("eval_time"), 0) for t in alert_tests + expr_tests]
        last = max(times, default=0)
        pending = sorted(alert_tests, key=lambda t: _duration(t.get("eval_time"), 0))
        errors: list[str] = []
        at = 0
        while at <= last:
            failed: list[str] = []
            for evaluator in evaluators:
                evaluator.evaluate(start + at)
                failed.extend(
                    f"    rule: {state.rule.name}, time: {format_duration(at)}, "
                    f"err: {state.status.last_error}"
                    for state in evaluator.rules
                    if state.status.health == "err"
                )
            if failed:  # as promtool: an evaluation error ends the group's tests
                return errors + failed
            while pending and _duration(pending[0].get("eval_time"), 0) < at + eval_interval:
                case = pending.pop(0)
                errors.extend(_check_alerts(case, evaluators, prefix))
            at += eval_interval
        for case in expr_tests:
            errors.extend(_check_expr(case, engine, store, start, prefix, fuzzy))
        return errors
    finally:
        store.close()
        shutil.rmtree(directory, ignore_errors=True)


def _load(store: MetricsDB, series: list[Any], start: int, interval: int) -> None:
    rows = []
    for item in series:
        try:
            (matchers,) = parse_series_selector(str(item["series"]))
            labels = tuple(sorted((m.name, m.value) for m in matchers if m.value))
            values = expand_items(str(item.get("values", "")))
        except (KeyError, ValueError) as err:
            raise UnitTestError(f"invalid input series {item!r}: {err}") from None
        for step, value in enumerate(values):
            if value is not None:
                rows.append((labels, start + step * interval, value))
    if rows:
        rows.sort(key=lambda r: r[1])
        store.append("default", SeriesBatch.from_samples(rows))


def _check_alerts(
    case: Mapping[str, Any], evaluators: list[GroupEvaluator], prefix: str
) -> list[str]:
    alertname = str(case.get("alertname") or "")
    if not alertname:
        return ["an item under alert_rule_test misses required attribute alertname"]
    got = sorted(
        (alert.labels, alert.annotations)
        for evaluator in evaluators
        for state in evaluator.rules
        if state.alerting is not None and state.alerting.name == alertname
        for alert in state.alerting.alerts.values()
        if alert.state is AlertState.FIRING
    )
    expected = sorted(
        (
            _sorted({**_texts(item.get("exp_labels")), "alertname": alertname}),
            _sorted(_texts(item.get("exp_annotations"))),
        )
        for item in case.get("exp_alerts") or []
    )
    if got == expected:
        return []
    eval_time = format_duration(_duration(case.get("eval_time"), 0))
    return [
        f"{prefix}    alertname: {alertname}, time: {eval_time}, \n"
        f"        exp:{_show_alerts(expected)}, \n        got:{_show_alerts(got)}"
    ]


def _check_expr(
    case: Mapping[str, Any],
    engine: Engine,
    store: MetricsDB,
    start: int,
    prefix: str,
    fuzzy: bool,
) -> list[str]:
    expr = str(case.get("expr") or "")
    at = _duration(case.get("eval_time"), 0)
    try:
        result = engine.instant_query(StoreQuerier(store, "default"), expr, start + at)
        if result.result_type == "vector":
            # a histogram sample as promtool compares it: value 0, its `{{...}}` text
            got = sorted(
                (
                    s.labels,
                    float(s.values[0]) if len(s.values) else 0.0,
                    s.histograms[0][1].test_expression() if s.histograms else "",
                )
                for s in result.series
            )
        else:
            got = sorted((labels, value, "") for labels, value in vector_of(result))
    except (QueryError, ValueError) as err:
        return [f"{prefix}    expr: {expr!r}, time: {format_duration(at)}, err: {err}"]
    expected = []
    for item in case.get("exp_samples") or []:
        text = str(item.get("labels") or "")
        labels: Labels = ()
        histogram = str(item.get("histogram") or "")
        try:
            if text:
                (matchers,) = parse_series_selector(text)
                labels = tuple(sorted((m.name, m.value) for m in matchers if m.value))
            if histogram:
                histogram = parse_histogram(histogram).test_expression()
        except ValueError as err:
            return [f"{prefix}    expr: {expr!r}, time: {format_duration(at)}, err: {err}"]
        expected.append((labels, float(item.get("value", 0)), histogram))
    expected.sort()
    same = len(got) == len(expected) and all(
        g[0] == e[0] and g[2] == e[2] and _equal(g[1], e[1], fuzzy)
        for g, e in zip(got, expected, strict=True)
    )
    if same:
        return []
    return [
        f"{prefix}    expr: {expr!r}, time: {format_duration(at)},\n"
        f"        exp: {_show_samples(expected)}\n        got: {_show_samples(got)}"
    ]


def _equal(a: float, b: float, fuzzy: bool) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    return fuzzy and (math.nextafter(a, -math.inf) == b or math.nextafter(a, math.inf) == b)


def _labels_text(labels: Labels) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels) + "}"


def _show_samples(samples: list[tuple[Labels, float, str]]) -> str:
    """As promtool writes samples: labels and the value in %E (or the histogram), or nil."""
    if not samples:
        return "nil"
    return ", ".join(f"{_labels_text(lbl)} {h or format_e(v).upper()}" for lbl, v, h in samples)


def _show_alerts(alerts: list[tuple[Labels, Labels]]) -> str:
    """As promtool writes alerts: numbered, labels then annotations."""
    if not alerts:
        return "[]"
    items = [
        f"{i}:\n  Labels:{_labels_text(lbl)}\n  Annotations:{_labels_text(ann)}"
        for i, (lbl, ann) in enumerate(alerts)
    ]
    return "[\n" + ",\n".join(items) + "\n]"


def _texts(raw: Any) -> dict[str, str]:
    return {str(k): yaml_label_text(v) for k, v in (raw or {}).items()}


def _sorted(pairs: Mapping[str, str]) -> Labels:
    return tuple(sorted((k, v) for k, v in pairs.items() if v != ""))


def _duration(raw: Any, default: int) -> int:
    if raw is None:
        return default
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return int(raw * 1000)
    try:
        return parse_duration(str(raw))
    except ValueError as err:
        raise UnitTestError(str(err)) from None


def _start(raw: Any) -> int:
    if raw is None:
        return 0
    if isinstance(raw, (int, float)):
        return int(raw * 1000)
    text = str(raw)
    try:
        return int(float(text) * 1000)
    except ValueError:
        pass
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        raise UnitTestError(f"invalid start_timestamp {text!r}") from None
