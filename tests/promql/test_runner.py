"""The runner's judgement (FORMAT.md §4.3, §5) against a fake engine with canned answers."""

from __future__ import annotations

import numpy as np
import pytest

from tests.promql.promqltest import STALE_NAN, parse_script
from tests.promql.runner import Outcome, run_case
from watchkeeper.model import labels_from_dict
from watchkeeper.model.histogram_notation import parse_histogram
from watchkeeper.promql.errors import QueryError, QueryParseError
from watchkeeper.promql.result import Annotations, QueryResult, Series

Answer = QueryResult | Exception


def series(labels: dict[str, str], points: list[tuple[int, float]]) -> Series:
    return Series(
        labels_from_dict(labels),
        np.array([t for t, _ in points], dtype=np.int64),
        np.array([v for _, v in points], dtype=np.float64),
    )


def vector(
    *samples: tuple[dict[str, str], float], time_ms: int = 0, **notes: list[str]
) -> QueryResult:
    return QueryResult(
        "vector",
        [series(labels, [(time_ms, value)]) for labels, value in samples],
        time_ms=time_ms,
        annotations=Annotations(**notes),
    )


def matrix(
    *rows: tuple[dict[str, str], list[tuple[int, float]]], **notes: list[str]
) -> QueryResult:
    return QueryResult(
        "matrix",
        [series(labels, points) for labels, points in rows],
        annotations=Annotations(**notes),
    )


class FakeEngine:
    """Answers instant queries with `instant`; the first range query (the original query's
    range-mode check) with `range_answer`, other range queries (those of the `@` re-runs) and
    by default with the instant vector repeated at every step (so the range-mode check
    agrees)."""

    def __init__(self, instant: Answer, range_answer: Answer | None = None) -> None:
        self.instant = instant
        self.range_answer = range_answer
        self.range_calls: list[tuple[int, int, int]] = []
        self.instant_calls = 0

    def instant_query(self, querier: object, query: str, time_ms: int) -> QueryResult:
        self.instant_calls += 1
        return self._answer(self.instant)

    def range_query(
        self, querier: object, query: str, start_ms: int, end_ms: int, step_ms: int
    ) -> QueryResult:
        self.range_calls.append((start_ms, end_ms, step_ms))
        if self.range_answer is not None and len(self.range_calls) == 1:
            return self._answer(self.range_answer)
        instant = self._answer(self.instant)
        steps = range(start_ms, end_ms + 1, step_ms)
        if instant.result_type == "scalar":
            return matrix(({}, [(t, instant.scalar) for t in steps]))
        ordered = sorted(instant.series, key=lambda s: s.labels)
        if any(s.histograms for s in ordered):
            return QueryResult(
                "matrix",
                [
                    Series(
                        s.labels,
                        np.empty(0, dtype=np.int64),
                        np.empty(0, dtype=np.float64),
                        tuple((t, s.histograms[0][1]) for t in steps),
                    )
                    for s in ordered
                ],
            )
        return matrix(
            *((dict(s.labels), [(t, float(s.values[0])) for t in steps]) for s in ordered)
        )

    @staticmethod
    def _answer(answer: Answer) -> QueryResult:
        if isinstance(answer, Exception):
            raise answer
        return answer


def run(script: str, instant: Answer, range_answer: Answer | None = None) -> Outcome:
    (case,) = parse_script(script, "t.test")
    return run_case(FakeEngine(instant, range_answer), case)


LOADED = 'load 1m\n  m{a="1"} 1\n\n'
VECTOR_EVAL = LOADED + 'eval instant at 0 m\n  m{a="1"} 1\n  m{a="2"} 2\n'


def test_unordered_vector_passes() -> None:
    outcome = run(
        VECTOR_EVAL, vector(({"__name__": "m", "a": "2"}, 2), ({"__name__": "m", "a": "1"}, 1))
    )
    assert outcome.passed, outcome.report()


@pytest.mark.parametrize(
    ("answer", "summary"),
    [
        (
            vector(({"__name__": "m", "a": "1"}, 1), ({"__name__": "m", "a": "2"}, 2.5)),
            'instant query: m{a="2"}: expected 2, got 2.5',
        ),
        (vector(({"__name__": "m", "a": "1"}, 1)), 'instant query: missing series: m{a="2"} 2'),
        (
            vector(({"__name__": "m", "a": "1"}, 1), ({"a": "2"}, 2)),
            'instant query: unexpected series: {a="2"} 2 (and 1 more)',
        ),
        (QueryResult("scalar", scalar=1), "expected a vector, got a scalar"),
        (QueryError("boom"), "unexpected error: boom"),
        (TypeError("bad"), "instant query at 0: engine crashed: TypeError: bad"),
    ],
)
def test_vector_failures(answer: Answer, summary: str) -> None:
    outcome = run(VECTOR_EVAL, answer)
    assert not outcome.passed
    assert outcome.summary == summary
    assert outcome.report().startswith(f"t.test:4: {summary}\n    eval instant at 0 m")


def test_failure_report_shows_expected_and_got() -> None:
    outcome = run(VECTOR_EVAL, vector(({"__name__": "m", "a": "1"}, 1)))
    assert "expected:\n" in outcome.details and "got:\n" in outcome.details
    assert 'm{a="2"} 2' in outcome.details


def test_ordered() -> None:
    script = LOADED + 'eval instant at 0 sort(m)\n  expect ordered\n  m{a="1"} 1\n  m{a="2"} 2\n'
    good = vector(({"__name__": "m", "a": "1"}, 1), ({"__name__": "m", "a": "2"}, 2))
    bad = vector(({"__name__": "m", "a": "2"}, 2), ({"__name__": "m", "a": "1"}, 1))
    assert run(script, good).passed
    outcome = run(script, bad)
    assert "order:" in outcome.summary


def test_no_expected_lines_means_empty() -> None:
    script = LOADED + "eval instant at 0 nothing\n"
    assert run(script, vector()).passed
    assert run(script, matrix()).passed
    assert not run(script, vector(({"a": "1"}, 1))).passed
    assert not run(script, QueryResult("scalar", scalar=0)).passed


def test_stale_and_nan_expectations() -> None:
    script = LOADED + "eval instant at 0 m\n  {} NaN\n"
    assert run(script, vector(({}, float("nan")))).passed
    assert not run(script, vector(({}, STALE_NAN))).passed


def test_scalar_and_string() -> None:
    scalar_script = "eval instant at 5m 1 + 1\n  2\n"
    assert run(scalar_script, QueryResult("scalar", scalar=2.0000000001)).passed
    assert not run(scalar_script, QueryResult("scalar", scalar=2.1)).passed
    assert not run(scalar_script, vector(({}, 2))).passed
    string_script = 'eval instant at 0 "a"\n  expect string "a"\n'
    assert run(string_script, QueryResult("string", string="a")).passed
    assert not run(string_script, QueryResult("string", string="b")).passed


def test_expect_fail() -> None:
    script = "eval instant at 0 x\n  expect fail msg: exact text\n"
    assert run(script, QueryError("exact text")).passed
    assert run(script, QueryError("other")).summary == "wrong error message: other"
    assert not run(script, vector()).passed
    regex = "eval instant at 0 x\n  expect fail regex: conflict\\w+\n"
    assert run(regex, QueryError("a conflicting label")).passed
    assert not run(regex, QueryError("no match")).passed
    deprecated = "eval_fail instant at 0 x\n"
    assert run(deprecated, QueryError("anything")).passed


def test_parse_errors_never_count_as_expected_failures() -> None:
    outcome = run("eval instant at 0 x[5m+1m]\n  expect fail\n", QueryParseError("bad syntax"))
    assert not outcome.passed and outcome.summary == "parse error: bad syntax"


WARN = "PromQL warning: something odd (1:1)"
INFO = "PromQL info: fyi (1:1)"


@pytest.mark.parametrize(
    ("expect_lines", "warnings", "infos", "passes"),
    [
        ([], [WARN], [INFO], True),  # no lines for a kind: not checked
        (["expect no_warn"], [], [INFO], True),
        (["expect no_warn"], [WARN], [], False),
        (["expect no_info"], [], [INFO], False),
        (["expect warn"], [WARN], [], True),
        (["expect warn"], [], [], False),
        ([f"expect warn msg: {WARN}"], [WARN], [], True),
        (["expect warn msg: something odd"], [WARN], [], False),  # msg: is the full text
        (["expect warn regex: odd"], [WARN], [], True),
        (["expect warn regex: odd"], [WARN, "PromQL warning: other (1:3)"], [], False),
        ([f"expect warn msg: {WARN}", "expect warn regex: nope"], [WARN], [], False),
        (["expect info"], [WARN], [INFO], True),
    ],
)
def test_annotations(
    expect_lines: list[str], warnings: list[str], infos: list[str], passes: bool
) -> None:
    script = "eval instant at 0 x\n" + "".join(f"  {line}\n" for line in expect_lines)
    outcome = run(script, vector(warnings=warnings, infos=infos))
    assert outcome.passed is passes, outcome.report()


def test_deprecated_eval_warn_and_info() -> None:
    assert run("eval_warn instant at 0 x\n", vector(warnings=[WARN])).passed
    assert not run("eval_warn instant at 0 x\n", vector()).passed
    assert not run("eval_info instant at 0 x\n", vector(warnings=[WARN])).passed


def test_range_mode_check() -> None:
    script = LOADED + 'eval instant at 5m m\n  m{a="1"} 1\n'
    good = vector(({"__name__": "m", "a": "1"}, 1), time_ms=300_000)
    engine = FakeEngine(good)
    (case,) = parse_script(script, "t.test")
    assert run_case(engine, case).passed
    # the query's own check, then one per `@` re-run (at -10T, 0, T/5, T and 10T)
    assert engine.range_calls[0] == (240_000, 360_000, 60_000)
    assert [start + 60_000 for start, _, _ in engine.range_calls[1:]] == [
        -3_000_000,
        0,
        60_000,
        300_000,
        3_000_000,
    ]

    wrong_at_t = matrix(({"__name__": "m", "a": "1"}, [(240_000, 1), (300_000, 7)]))
    outcome = run(script, good, wrong_at_t)
    assert outcome.summary.startswith("range-mode check") and "expected 1, got 7" in outcome.summary
    unsorted = matrix(({"b": "1"}, [(300_000, 1)]), ({"a": "1"}, [(300_000, 1)]))
    assert "not sorted" in run(script, good, unsorted).summary
    assert "failed: nope" in run(script, good, QueryError("nope")).summary
    # Annotations are not checked in range mode.
    noisy = matrix(({"__name__": "m", "a": "1"}, [(300_000, 1)]), warnings=[WARN])
    quiet = LOADED + 'eval instant at 5m m\n  expect no_warn\n  m{a="1"} 1\n'
    assert run(quiet, good, noisy).passed


def test_range_mode_check_is_skipped_for_step_functions_and_ordered() -> None:
    wrong = matrix(({}, [(0, 99)]))
    assert run("eval instant at 0 time() + step()\n  0\n", QueryResult("scalar"), wrong).passed
    ordered = "eval instant at 0 sort(m)\n  expect ordered\n  {} 1\n"
    assert run(ordered, vector(({}, 1)), wrong).passed


def test_range_eval() -> None:
    script = LOADED + 'eval range from 0 to 2m step 1m m\n  m{a="1"} 1 _ 3\n  m{a="2"} 1x2\n'
    good = matrix(
        ({"__name__": "m", "a": "1"}, [(0, 1), (120_000, 3)]),
        ({"__name__": "m", "a": "2"}, [(0, 1), (60_000, 1), (120_000, 1)]),
    )
    assert run(script, vector(), good).passed
    shifted = matrix(
        ({"__name__": "m", "a": "1"}, [(0, 1), (60_000, 3)]),
        ({"__name__": "m", "a": "2"}, [(0, 1), (60_000, 1), (120_000, 1)]),
    )
    assert "expected a point at 2m, got one at 1m" in run(script, vector(), shifted).summary
    unsorted = QueryResult("matrix", list(reversed(good.series)))
    assert "not sorted by labels" in run(script, vector(), unsorted).summary
    too_long = LOADED + "eval range from 0 to 1m step 1m m\n  m 1 2 3\n"
    assert "only 2 steps fit" in run(too_long, vector(), good).summary


def test_label_sort_order_is_bytewise_pairwise() -> None:
    script = 'eval range from 0 to 0 step 1m x\n  {Z="1"} 1\n  {__name__="a"} 1\n  {a="1"} 1\n'
    sorted_answer = matrix(
        ({"Z": "1"}, [(0, 1)]), ({"__name__": "a"}, [(0, 1)]), ({"a": "1"}, [(0, 1)])
    )
    assert run(script, vector(), sorted_answer).passed


def test_expect_range_vector() -> None:
    script = (
        LOADED
        + "eval instant at 1m m[1m]\n  expect range vector from 0 to 1m step 30s\n  m 1 2 3\n"
    )
    answer = matrix(({"__name__": "m"}, [(0, 1), (30_000, 2), (60_000, 3)]))
    engine = FakeEngine(answer)
    (case,) = parse_script(script, "t.test")
    assert run_case(engine, case).passed
    assert engine.range_calls == []  # no range-mode check for range-vector results
    assert not run(script, vector(({"__name__": "m"}, 3))).passed


def _histogram_vector(text: str) -> QueryResult:
    h = parse_histogram(text)
    no_floats = np.empty(0, dtype=np.float64)
    return QueryResult(
        "vector",
        [
            Series(
                labels_from_dict({"__name__": "h"}),
                np.empty(0, dtype=np.int64),
                no_floats,
                ((0, h),),
            )
        ],
        time_ms=0,
    )


@pytest.mark.parametrize(
    ("got", "expected", "passes"),
    [
        # §5.4: compared compacted, so empty buckets and span layout do not matter
        ("{{count:1 buckets:[0 1] offset:-1}}", "{{count:1 buckets:[1]}}", True),
        ("{{count:1.0000000000001 buckets:[1]}}", "{{count:1 buckets:[1]}}", True),
        ("{{count:2 buckets:[1]}}", "{{count:1 buckets:[1]}}", False),
        ("{{count:1 buckets:[1] offset:1}}", "{{count:1 buckets:[1]}}", False),
        ("{{count:1 z_bucket_w:0.5}}", "{{count:1 z_bucket_w:0.50000000001}}", False),
        # the hint only when the expectation states one
        ("{{count:1 counter_reset_hint:gauge}}", "{{count:1}}", True),
        ("{{count:1 counter_reset_hint:gauge}}", "{{count:1 counter_reset_hint:not_reset}}", False),
    ],
)
def test_histograms_are_compared_as_format_5_4_says(got: str, expected: str, passes: bool) -> None:
    engine = FakeEngine(_histogram_vector(got))
    (case,) = parse_script(f"eval instant at 0 h\n  h {expected}\n", "t.test")
    outcome = run_case(engine, case)
    assert outcome.passed is passes, outcome.report()
    # a histogram where a float is expected never passes
    (case,) = parse_script("eval instant at 0 h\n  h 1\n", "t.test")
    assert not run_case(engine, case).passed
