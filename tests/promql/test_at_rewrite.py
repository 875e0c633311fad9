"""The `@` re-run rewrite of FORMAT.md §4.3 step 2."""

from __future__ import annotations

import promql_parser as pp

from tests.promql.at_rewrite import is_time_dependent, pin


def test_selectors_and_subqueries_get_the_time() -> None:
    text = pin(
        pp.parse('rate(x{a="b"}[5m]) + on(a) group_left(c) max_over_time(y[10m:1m])'), 60_000
    )
    assert text == (
        '(rate(x{a="b"}[300000ms] @ 60.000)) + on(a) group_left(c) '
        "(max_over_time((y)[600000ms:60000ms] @ 60.000))"
    )
    pp.parse(text)


def test_existing_at_and_offsets_are_kept() -> None:
    text = pin(pp.parse("sum by (job) (x offset 1m @ end()) - -y @ 5"), 1000)
    assert text == "(sum by (job)(x offset 60000ms @ end())) - (-(y @ 5.000))"
    pp.parse(text)


def test_time_dependent_queries_are_left_alone() -> None:
    assert is_time_dependent(pp.parse("timestamp(x)"))
    assert not is_time_dependent(pp.parse("sum(rate(x[5m]))"))
