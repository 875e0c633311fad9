"""Reading the promql-parser AST: node kinds, durations and `@`/`offset` as milliseconds."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import promql_parser as pp

from watchkeeper.model import METRIC_NAME, Matcher, MatchOp

_MATCH_OPS = {
    "MatchOp.Equal": MatchOp.EQUAL,
    "MatchOp.NotEqual": MatchOp.NOT_EQUAL,
    "MatchOp.Re": MatchOp.REGEX,
    "MatchOp.NotRe": MatchOp.NOT_REGEX,
}
# promql-parser hands a negative `@` time back as a panic; its debug form still holds it
_DEBUG_TIME = re.compile(r"tv_sec:\s*(-?\d+),\s*tv_nsec:\s*(\d+)")


def duration_ms(value: dt.timedelta | None) -> int:
    if value is None:
        return 0
    return round(value.total_seconds() * 1000)


def offset_ms(node: Any) -> int:
    return duration_ms(node.offset)


def at_modifier(node: Any) -> tuple[str, int] | None:
    """The node's `@`: ("start", 0), ("end", 0) or ("at", milliseconds); None without one."""
    at = node.at
    if at is None:
        return None
    kind = str(at.type).rsplit(".", 1)[-1]
    if kind == "Start":
        return ("start", 0)
    if kind == "End":
        return ("end", 0)
    try:
        when = at.at
    except BaseException:  # pyo3's PanicException derives from BaseException
        found = _DEBUG_TIME.findall(repr(node))
        secs, nanos = found[-1]
        return ("at", int(secs) * 1000 + int(nanos) // 1_000_000)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return ("at", round((when - epoch).total_seconds() * 1000))


def selector_matcher_sets(node: Any) -> list[list[Matcher]]:
    """A vector selector's matchers, one list per `or` alternative."""
    raw_sets = node.matchers.or_matchers or [node.matchers.matchers]
    sets: list[list[Matcher]] = []
    for raw in raw_sets:
        matchers = [Matcher(m.name, _MATCH_OPS[str(m.op)], m.value) for m in raw]
        if node.name:
            matchers.insert(0, Matcher(METRIC_NAME, MatchOp.EQUAL, node.name))
        sets.append(matchers)
    return sets


def children(node: Any) -> Iterator[Any]:
    if isinstance(node, pp.AggregateExpr):
        if node.param is not None:
            yield node.param
        yield node.expr
    elif isinstance(node, pp.BinaryExpr):
        yield node.lhs
        yield node.rhs
    elif isinstance(node, pp.Call):
        yield from node.args
    elif isinstance(node, pp.MatrixSelector):
        yield node.vector_selector
    elif isinstance(node, (pp.SubqueryExpr, pp.ParenExpr, pp.UnaryExpr)):
        yield node.expr


def walk(node: Any) -> Iterator[Any]:
    yield node
    for child in children(node):
        yield from walk(child)


def op_name(node: Any) -> str:
    return str(node.op)
