"""The promqltest script parser against FORMAT.md (no engine needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.promql import conformance
from tests.promql.promqltest import (
    STALE_NAN,
    STALE_NAN_BITS,
    EvalCase,
    Histogram,
    ScriptError,
    almost_equal,
    expand_item,
    go_unquote,
    is_stale_nan,
    parse_duration,
    parse_go_number,
    parse_script,
    parse_series_description,
)
from watchkeeper.model import labels_from_dict


def values(text: str) -> list[object]:
    """The expanded positions of a series description, with stale markers as "stale"."""
    out: list[object] = []
    for v in parse_series_description(text).values:
        out.append("stale" if isinstance(v, float) and is_stale_nan(v) else v)
    return out


def only_case(script: str) -> EvalCase:
    (case,) = parse_script(script, "t.test")
    return case


# --- series descriptions (§3.1) --------------------------------------------------------------


def test_worked_example_has_13_positions() -> None:
    desc = parse_series_description('a{b="c"} 0+10x5 _ stale 1 -2x3')
    assert desc.labels == (("__name__", "a"), ("b", "c"))
    assert values('a{b="c"} 0+10x5 _ stale 1 -2x3') == [
        0,
        10,
        20,
        30,
        40,
        50,
        None,
        "stale",
        1,
        -2,
        -2,
        -2,
        -2,
    ]


def test_gap_repeat_gives_n_gaps_but_value_repeat_gives_n_plus_one() -> None:
    assert values("m _x3") == [None, None, None]
    assert values("m 1x3") == [1, 1, 1, 1]
    assert values("m 1x0") == [1]
    assert values("m _x0 5") == [5]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("m -2+4x3", [-2, 2, 6, 10]),
        ("m 1-2x4", [1, -1, -3, -5, -7]),
        ("m -2x3", [-2, -2, -2, -2]),
        ("m 1+-2x2", [1, -1, -3]),
        ("m 1.5e1+.5x2", [15, 15.5, 16]),
        ("m 0x2", [0, 0, 0]),  # no hex in series descriptions: `x` is the repeat
        ("m +3 -Inf inf", [3, -math.inf, math.inf]),
    ],
)
def test_value_items(text: str, expected: list[float]) -> None:
    assert values(text) == expected


def test_nan_in_any_case_is_an_ordinary_nan() -> None:
    for item in ("NaN", "nan", "NAN"):
        (value,) = expand_item(item)
        assert isinstance(value, float) and math.isnan(value) and not is_stale_nan(value)


def test_repeated_addition_not_multiplication() -> None:
    # 0.1 added three times is not 0.3 (nor 3 * 0.1): §3.1 asks for repeated addition.
    assert values("m 0+0.1x3")[-1] == 0.1 + 0.1 + 0.1


def test_histogram_items_count_positions() -> None:
    desc = parse_series_description(
        "m 1 {{schema:0 sum:5 count:4 buckets:[1 2 1]}} {{}}x2 {{count:1}}+{{count:2}}x1 _ 2"
    )
    kinds = ["h" if isinstance(v, Histogram) else v for v in desc.values]
    assert kinds == [1, "h", "h", "h", "h", "h", "h", None, 2]


@pytest.mark.parametrize(
    "text",
    ["m {{schema:0 bogus:1}}", "m {{sum:1 sum:2}}", "m {{count:1", "m {{counter_reset_hint:x}}"],
)
def test_invalid_histograms(text: str) -> None:
    with pytest.raises(ValueError):
        parse_series_description(text)


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ('{__name__="x", a="1"} 1', {"__name__": "x", "a": "1"}),
        ('{job="x"} 1', {"job": "x"}),
        ("m{} 1", {"__name__": "m"}),
        ("{} 1", {}),
        ("m{a='q\\'s', b=`raw\\n`} 1", {"__name__": "m", "a": "q's", "b": "raw\\n"}),
        ('m{a="x\\ty\\u00e9\\"z", } 1', {"__name__": "m", "a": 'x\ty\u00e9"z'}),
        ('m{a="}, {"} 1', {"__name__": "m", "a": "}, {"}),
        ('m{a=""} 1', {"__name__": "m"}),  # an empty value means no such label
        ('{"my.metric", a="1"} 1', {"__name__": "my.metric", "a": "1"}),
    ],
)
def test_metric_selectors(text: str, labels: dict[str, str]) -> None:
    assert parse_series_description(text).labels == labels_from_dict(labels)


@pytest.mark.parametrize(
    "text", ['m{a=~"x"} 1', 'm{a!="x"} 1', "m", "m{a=x} 1", 'm{a="1", a="2"} 1', "m 0x", "m 1.2.3"]
)
def test_invalid_series_descriptions(text: str) -> None:
    with pytest.raises(ValueError):
        parse_series_description(text)


def test_go_unquote() -> None:
    assert go_unquote('"a\\x41\\101\\n"') == "aAA\n"
    assert go_unquote('""') == ""
    assert go_unquote("`a\\b`") == "a\\b"
    with pytest.raises(ValueError):
        go_unquote('"bad \\q"')


# --- durations (§2) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("0", 0),
        ("1m30s", 90_000),
        ("1h5m", 3_900_000),
        ("10s53ms", 10_053),
        ("1y", 31_536_000_000),
        ("2w1d", 15 * 86_400_000),
        ("0s", 0),
        ("5ms", 5),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "50", "30s1m", "1.5m", "-5m", "1m1m", "5 m", "1M"])
def test_invalid_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# --- scalars (§4.2) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12", 12),
        ("-0.5", -0.5),
        ("1e3", 1000),
        ("+Inf", math.inf),
        ("-Inf", -math.inf),
        ("0x1f", 31),
        ("017", 15),
        ("1_000", 1000),
        (".5", 0.5),
    ],
)
def test_go_numbers(text: str, value: float) -> None:
    assert parse_go_number(text) == value


@pytest.mark.parametrize("text", ["foo", "1 2", "1_0.5", "{} 1", "x1"])
def test_not_go_numbers(text: str) -> None:
    assert parse_go_number(text) is None


def test_nan_scalar() -> None:
    result = parse_go_number("NaN")
    assert result is not None and math.isnan(result)


# --- blocks, loads and storage (§1, §3) ------------------------------------------------------


def test_load_positions_and_stale_bits() -> None:
    case = only_case("load 1m\n  m 1 _ stale {{count:1}} 5\n\neval instant at 0 m\n  m 1\n")
    (series,) = case.storage.series
    assert series.timestamps.tolist() == [0, 120_000, 240_000]  # gap and histogram skipped
    assert series.values.view(np.uint64)[1] == STALE_NAN_BITS
    assert series.values[2] == 5


def test_each_load_starts_at_zero_and_later_duplicate_wins() -> None:
    script = """
load 1m
  m 1 2
  m 7 8 9
  n{a="x"} 1

load 1m
  m _ _ _ 4

eval instant at 0 m
  m 7
"""
    case = only_case(script)
    m, n = case.storage.series
    assert m.timestamps.tolist() == [0, 60_000, 120_000, 180_000]
    assert m.values.tolist() == [7, 8, 9, 4]
    assert n.labels == (("__name__", "n"), ("a", "x"))


def _nhcb(script_loads: str) -> list[tuple[int, object]]:
    """The (time, histogram) samples of the one NHCB series a load_with_nhcb block makes."""
    case = only_case(f"load_with_nhcb 1m\n{script_loads}\neval instant at 0 h\n")
    (found,) = case.storage.histograms
    assert found.labels == (("__name__", "h"), ("job", "a"))
    return list(zip(found.timestamps.tolist(), found.histograms, strict=True))


def test_load_with_nhcb_buckets_count_and_sum() -> None:
    (t, h), _ = _nhcb(
        '  h_bucket{job="a", le="1"} 1 2\n  h_bucket{job="a", le="+Inf"} 3 4\n'
        '  h_count{job="a"} 3 4\n  h_sum{job="a"} 7 8\n'
    )
    assert t == 0
    assert (h.schema, h.count, h.sum, h.custom_values) == (-53, 3, 7, (1.0,))
    assert h.positive() == {0: 1.0, 1: 2.0}


def test_load_with_nhcb_without_inf_bucket_takes_the_count_or_the_highest_bucket() -> None:
    # §3.4: a missing +Inf bucket holds the _count; without _count, the highest bucket's
    ((_, with_count),) = _nhcb(
        '  h_bucket{job="a", le="1"} 1\n  h_bucket{job="a", le="2"} 3\n  h_count{job="a"} 5\n'
    )
    assert (with_count.count, with_count.custom_values) == (5, (1.0, 2.0))
    assert with_count.positive() == {0: 1.0, 1: 2.0, 2: 2.0}
    ((_, without),) = _nhcb('  h_bucket{job="a", le="1"} 1\n  h_bucket{job="a", le="2"} 3\n')
    assert (without.count, without.custom_values) == (3, (1.0, 2.0))
    assert {i: c for i, c in without.positive().items() if c} == {0: 1.0, 1: 2.0}


@pytest.mark.parametrize(
    "loads",
    [
        '  h_bucket{job="a", le="1"} 3\n  h_bucket{job="a", le="2"} 1\n',  # not cumulative
        '  h_bucket{job="a", le="+Inf"} 3\n  h_count{job="a"} 4\n',  # count disagrees
    ],
)
def test_load_with_nhcb_refuses_what_cannot_convert(loads: str) -> None:
    with pytest.raises(ScriptError, match="load_with_nhcb"):
        parse_script(f"load_with_nhcb 1m\n{loads}\neval instant at 0 h\n", "t.test")


def test_clear_and_snapshots() -> None:
    script = """
load 5m
  a 1

eval instant at 0 a
  a 1

clear

eval instant at 0 a

load 5m
  b 2

eval instant at 0 b
  b 2
"""
    first, second, third = parse_script(script, "t.test")
    assert [s.labels for s in first.storage.series] == [(("__name__", "a"),)]
    assert second.storage.series == ()
    assert [s.labels for s in third.storage.series] == [(("__name__", "b"),)]
    assert (first.line, second.line, third.line) == (5, 10, 15)


def test_comment_ends_a_block() -> None:
    script = """
eval instant at 1m sum(a)
  {} 1
# a comment right after the expected lines ends the eval block
eval instant at 2m sum(a)
  {} 2
"""
    first, second = parse_script(script, "t.test")
    assert list(first.series) == [()] and first.series[()].values == (1,)
    assert second.time_ms == 120_000


def test_comment_inside_a_load_block_makes_the_rest_a_command() -> None:
    script = "load 1m\n  a 1\n  # oops\n  b 2\n"
    with pytest.raises(ScriptError) as err:
        parse_script(script, "t.test")
    assert err.value.line == 4  # `b 2` is read as a command and is not one


def test_scalar_expectation_ends_the_block() -> None:
    case = only_case("eval instant at 0 1 + 1\n  2\n")
    assert case.expected_scalar == 2 and not case.series
    with pytest.raises(ScriptError) as err:
        parse_script("eval instant at 0 1 + 1\n  2\n  3\n", "t.test")
    assert err.value.line == 3


def test_unknown_command() -> None:
    with pytest.raises(ScriptError, match="unknown command"):
        parse_script("evil instant at 0 1\n", "t.test")
    with pytest.raises(ScriptError):
        parse_script("frobnicate\n", "t.test")


# --- evals (§4) ------------------------------------------------------------------------------


def test_instant_and_range_commands() -> None:
    script = """
eval instant at 1m30s foo + on (a) bar
  expect no_info
  expect warn msg: PromQL warning: x (1:1)
  expect warn regex: some.*thing
  foo{a="1"} 3

eval range from 0 to 20m step 10m foo
  foo 1 _ 3
  foo 0x2
"""
    inst, rng = parse_script(script, "t.test")
    assert (inst.kind, inst.time_ms, inst.expr) == ("instant", 90_000, "foo + on (a) bar")
    assert inst.no_info and not inst.no_warn
    assert [a.describe() for a in inst.annotations] == [
        "expect warn msg: PromQL warning: x (1:1)",
        "expect warn regex: some.*thing",
    ]
    assert (rng.kind, rng.start_ms, rng.end_ms, rng.step_ms) == ("range", 0, 1_200_000, 600_000)
    (series,) = rng.series.values()  # the later line for `foo` wins
    assert series.values == (0, 0, 0) and series.line == 10


def test_expect_range_vector_overrides_time_and_allows_many_values() -> None:
    case = only_case(
        "eval instant at 1m m[1m]\n  expect range vector from 10s to 1m step 10s\n  m 1 2 3\n"
    )
    assert case.time_ms == 60_000
    assert case.range_vector is not None and case.range_vector.start_ms == 10_000
    with pytest.raises(ScriptError, match="exactly one value"):
        parse_script("eval instant at 1m m[1m]\n  m 1 2 3\n", "t.test")


def test_deprecated_forms() -> None:
    script = """
eval_fail instant at 0 foo
  expected_fail_message some error

eval_fail range from 0 to 1m step 1m foo
  expected_fail_regexp some.*

eval_warn instant at 0 foo

eval_ordered instant at 0 sort(foo)
  foo{a="1"} 1
  foo{a="2"} 2
"""
    fail_msg, fail_re, warn, ordered = parse_script(script, "t.test")
    assert fail_msg.expect_fail and fail_msg.fail_msg == "some error"
    assert fail_re.expect_fail and fail_re.fail_regex == "some.*"
    assert warn.any_warn and not warn.expect_fail
    assert ordered.ordered
    assert [s.position for s in ordered.series.values()] == [1, 2]
    with pytest.raises(ScriptError):
        parse_script("eval_ordered range from 0 to 1m step 1m foo\n", "t.test")


def test_expected_fail_message_only_after_eval_fail() -> None:
    with pytest.raises(ScriptError):
        parse_script("eval instant at 0 foo\n  expected_fail_message boom\n", "t.test")


def test_expect_fail_and_string() -> None:
    case = only_case("eval instant at 0 foo\n  expect fail msg:  exact text  \n")
    assert case.expect_fail and case.fail_msg == "exact text"
    case = only_case('eval instant at 0 "a"\n  expect string "a\\tb"\n')
    assert case.expected_string == "a\tb"
    case = only_case('eval instant at 0 ""\n  expect string ""\n')
    assert case.expected_string == ""


@pytest.mark.parametrize(
    "body",
    [
        "expect warn\n  expect no_warn",
        "expect info msg: x\n  expect no_info",
        "expect fail\n  expect fail",
        "expect ordered msg: x",
        "expect no_warn regex: x",
        "expect bogus",
        "expect warn regex: (",
        "expect range vector from 1m to 0 step",
    ],
)
def test_invalid_eval_bodies(body: str) -> None:
    with pytest.raises(ScriptError):
        parse_script(f"eval instant at 0 foo\n  {body}\n", "t.test")


def test_series_named_expect_must_use_braces() -> None:
    case = only_case("eval instant at 0 expect\n  expect{} 1\n")
    assert list(case.series) == [(("__name__", "expect"),)]


def test_unparsable_promql_is_left_to_the_engine() -> None:
    # §4.1 would reject the file; we keep it and let the engine's parse error fail the eval.
    case = only_case("eval instant at 0 rate(foo[5m+1m] anchored)\n")
    assert case.expr == "rate(foo[5m+1m] anchored)"


# --- float comparison (§5.3) -----------------------------------------------------------------

NAN = math.nan
INF = math.inf
MIN_NORMAL = 2.2250738585072014e-308


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (STALE_NAN, STALE_NAN, True),
        (STALE_NAN, NAN, False),
        (NAN, STALE_NAN, False),
        (STALE_NAN, 1.0, False),
        (NAN, NAN, True),
        (NAN, 1.0, False),
        (1.0, NAN, False),
        (INF, INF, True),
        (-INF, -INF, True),
        (INF, -INF, False),
        (INF, 1.7976931348623157e308, False),
        (0.0, -0.0, True),
        (0.0, 1e-300, False),  # a zero side means (practically) exact
        (0.0, 1e-310, False),
        (1e-310, 2e-310, False),  # |a|+|b| subnormal: absolute tolerance ε·MIN_NORMAL
        (0.0, 1e-320, True),  # …which deep subnormals are within: not quite "exact"
        (1e-320, 2e-320, True),
        (1.0, 1.0 + 1e-7, True),  # relative tolerance 1e-6 of |a|+|b|
        (1.0, 1.0 + 3e-6, False),
        (1e10, 1e10 + 1e4, True),
        (1e10, 1e10 + 1e5, False),
        (-5.0, 5.0, False),
        (1.7976931348623157e308, -1.7976931348623157e308, False),
    ],
)
def test_almost_equal(a: float, b: float, equal: bool) -> None:
    assert almost_equal(a, b) is equal
    assert almost_equal(b, a) is equal


def test_stale_nan_survives_python_floats() -> None:
    assert is_stale_nan(STALE_NAN) and math.isnan(STALE_NAN)
    array = np.array([STALE_NAN_BITS], dtype=np.uint64).view(np.float64)
    assert is_stale_nan(float(array[0]))
    assert not is_stale_nan(math.nan) and MIN_NORMAL > 0


# --- the real files --------------------------------------------------------------------------


def test_all_files_parse_and_match_cases_tsv() -> None:
    """Every eval in testdata is found, with the kind, assertions and expression cases.tsv
    records: a strong check that blocks, expect lines and deprecated forms parse as specified."""
    rows = conformance.classification()
    if not conformance.testdata_files() or not rows:
        pytest.skip(f"conformance data not found under {conformance.CONFORMANCE_DIR}")
    parsed = {c.id: c for name in conformance.testdata_files() for c in conformance.load_file(name)}
    assert sorted(parsed) == sorted(rows)
    mismatches = [
        f"{case_id}: tsv {row.kind} {sorted(row.asserts)} {row.expr!r}, parsed {case.kind} "
        f"{sorted(case.asserts())} {case.expr!r}"
        for case_id, row in rows.items()
        if (case := parsed[case_id]).kind != row.kind
        or case.asserts() != row.asserts
        or case.expr != row.expr
    ]
    assert not mismatches, "\n".join(mismatches[:20])
