"""Series selectors such as `up{job="api"}` or `{"my.metric", code=~"5.."}` into matchers."""

from __future__ import annotations

import promql_parser

from watchkeeper.model import METRIC_NAME, Matcher, MatchOp

_OPS = {
    "MatchOp.Equal": MatchOp.EQUAL,
    "MatchOp.NotEqual": MatchOp.NOT_EQUAL,
    "MatchOp.Re": MatchOp.REGEX,
    "MatchOp.NotRe": MatchOp.NOT_REGEX,
}


class SelectorError(ValueError):
    """A `match[]` value that is not a series selector; the message says why."""


def parse_series_selector(text: str) -> list[list[Matcher]]:
    """Matcher sets of one series selector (several when it uses `or`); a series is selected if
    it satisfies every matcher of any set. As in Prometheus, each set needs one matcher that
    does not match the empty string."""
    try:
        expr = promql_parser.parse(text)
    except ValueError as err:
        raise SelectorError(f"1:1: parse error: {err}") from None
    if not isinstance(expr, promql_parser.VectorSelector):
        raise SelectorError(f"invalid series selector {text!r}: expected a vector selector")
    raw_sets = expr.matchers.or_matchers or [expr.matchers.matchers]
    result: list[list[Matcher]] = []
    for raw_set in raw_sets:
        matchers: list[Matcher] = []
        if expr.name:
            matchers.append(Matcher(METRIC_NAME, MatchOp.EQUAL, expr.name))
        try:
            matchers.extend(Matcher(raw.name, _OPS[str(raw.op)], raw.value) for raw in raw_set)
        except ValueError as err:
            raise SelectorError(str(err)) from None
        if all(m.matches_empty() for m in matchers):
            raise SelectorError("match[] must contain at least one non-empty matcher")
        result.append(matchers)
    return result
