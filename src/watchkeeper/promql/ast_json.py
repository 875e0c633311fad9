"""PromQL text to the two answers about its syntax the Prometheus API gives: the pretty form
(`/api/v1/format_query`) and the syntax tree as JSON (`/api/v1/parse_query`).

The JSON follows Prometheus 3.14's web/api/v1/translate_ast.go field by field. The `anchored`
and `smoothed` modifiers, which promql-parser does not parse, are off by default in Prometheus
too, so those fields are false as Prometheus writes them then. Duration expressions such as
`[5m+1m]` are evaluated by queries (rewritten to literals first) but their syntax tree is not
kept, so both answers refuse them; without them Prometheus writes `rangeExpr`, `offsetExpr` and
`stepExpr` as null, as here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import promql_parser

from watchkeeper.model.gofloat import format_f
from watchkeeper.promql.ast import at_modifier
from watchkeeper.promql.duration_expressions import rewrite as rewrite_durations
from watchkeeper.promql.engine import parse
from watchkeeper.promql.errors import QueryParseError
from watchkeeper.promql.trim_operators import restore_trims, trim_nodes

_CARDINALITY = {
    "OneToOne": "one-to-one",
    "ManyToOne": "many-to-one",
    "OneToMany": "one-to-many",
    "ManyToMany": "many-to-many",
}
_MATCH_OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}
_SET_OPS = {"and", "or", "unless"}


def format_query(text: str) -> str:
    """The query in Prometheus' pretty form (what `/api/v1/format_query` answers)."""
    expr = _parse(text)
    if _has_time_before_1970(expr):
        # promql-parser prints such an `@` time as 0, which would be a different query
        raise QueryParseError("cannot format an @ modifier time before 1970-01-01")
    pretty: str = expr.prettify()
    return restore_trims(pretty, text)


def parse_query(text: str) -> Any:
    """The query's syntax tree as Prometheus' `/api/v1/parse_query` answers it."""
    expr = _parse(text)
    return ast_to_json(expr, trim_nodes(text, expr))


def _parse(text: str) -> Any:
    if rewrite_durations(text, 0, 0) != text:
        # queries evaluate them (rewritten to literals); their syntax tree is not kept
        raise QueryParseError(
            "1:1: parse error: duration expressions such as [5m+1m] are not supported by "
            "format_query and parse_query"
        )
    return parse(text)


def ast_to_json(node: Any, trims: Mapping[int, str] | None = None) -> Any:
    """`trims`: the trim operators by the id of the node parsed in their place
    (trim_operators.trim_nodes)."""
    if node is None:
        return None
    if isinstance(node, promql_parser.AggregateExpr):
        modifier = node.modifier
        without = modifier is not None and _name(modifier.type) == "Without"
        return {
            "type": "aggregation",
            "op": str(node.op),
            "expr": ast_to_json(node.expr, trims),
            "param": ast_to_json(node.param, trims),
            "grouping": list(modifier.labels) if modifier is not None else [],
            "without": without,
        }
    if isinstance(node, promql_parser.BinaryExpr):
        return _binary(node, trims or {})
    if isinstance(node, promql_parser.Call):
        func = node.func
        return {
            "type": "call",
            "func": {
                "name": func.name,
                "argTypes": [_value_type(t) for t in func.arg_types],
                "variadic": func.variadic,
                "returnType": _value_type(func.return_type),
            },
            "args": [ast_to_json(arg, trims) for arg in node.args],
        }
    if isinstance(node, promql_parser.MatrixSelector):
        selector = node.vector_selector
        return {
            "type": "matrixSelector",
            "name": selector.name or "",
            "range": _ms(node.range),
            "rangeExpr": None,
            "offset": _ms(selector.offset),
            "offsetExpr": None,
            "matchers": _matchers(selector),
            **_at(selector),
            "anchored": False,
            "smoothed": False,
        }
    if isinstance(node, promql_parser.SubqueryExpr):
        return {
            "type": "subquery",
            "expr": ast_to_json(node.expr, trims),
            "range": _ms(node.range),
            "rangeExpr": None,
            "offset": _ms(node.offset),
            "offsetExpr": None,
            "step": _ms(node.step),
            "stepExpr": None,
            **_at(node),
        }
    if isinstance(node, promql_parser.NumberLiteral):
        return {"type": "numberLiteral", "val": format_f(node.val)}
    if isinstance(node, promql_parser.ParenExpr):
        return {"type": "parenExpr", "expr": ast_to_json(node.expr, trims)}
    if isinstance(node, promql_parser.StringLiteral):
        return {"type": "stringLiteral", "val": node.val}
    if isinstance(node, promql_parser.UnaryExpr):
        # promql-parser keeps only negation (a unary plus is dropped while parsing)
        return {"type": "unaryExpr", "op": "-", "expr": ast_to_json(node.expr, trims)}
    if isinstance(node, promql_parser.VectorSelector):
        return {
            "type": "vectorSelector",
            "name": node.name or "",
            "offset": _ms(node.offset),
            "offsetExpr": None,
            "matchers": _matchers(node),
            **_at(node),
            "anchored": False,
            "smoothed": False,
        }
    raise QueryParseError(f"unsupported expression {type(node).__name__}")


def _binary(node: Any, trims: Mapping[int, str]) -> dict[str, Any]:
    op = trims.get(id(node)) or str(node.op)
    modifier = node.modifier
    matching: dict[str, Any] | None = None
    # Prometheus keeps vector matching only between two instant vectors
    if _value_type_of(node.lhs) == "vector" and _value_type_of(node.rhs) == "vector":
        card = _CARDINALITY[_name(modifier.card)] if modifier is not None else "one-to-one"
        if op in _SET_OPS and card == "one-to-one":
            card = "many-to-many"
        label_modifier = modifier.matching if modifier is not None else None
        fill = modifier.fill_values if modifier is not None else None
        matching = {
            "card": card,
            "labels": list(label_modifier.labels) if label_modifier is not None else [],
            "on": label_modifier is not None and _name(label_modifier.type) == "Include",
            "include": list(modifier.group_labels or []) if modifier is not None else [],
            "fillValues": {
                "lhs": _number(fill.lhs) if fill is not None else None,
                "rhs": _number(fill.rhs) if fill is not None else None,
            },
        }
    return {
        "type": "binaryExpr",
        "op": op,
        "lhs": ast_to_json(node.lhs, trims),
        "rhs": ast_to_json(node.rhs, trims),
        "matching": matching,
        "bool": bool(modifier is not None and modifier.return_bool),
    }


def _value_type_of(node: Any) -> str:
    """The PromQL type an expression evaluates to."""
    if isinstance(node, promql_parser.NumberLiteral):
        return "scalar"
    if isinstance(node, promql_parser.StringLiteral):
        return "string"
    if isinstance(node, promql_parser.VectorSelector | promql_parser.AggregateExpr):
        return "vector"
    if isinstance(node, promql_parser.MatrixSelector | promql_parser.SubqueryExpr):
        return "matrix"
    if isinstance(node, promql_parser.Call):
        return _value_type(node.func.return_type)
    if isinstance(node, promql_parser.ParenExpr | promql_parser.UnaryExpr):
        return _value_type_of(node.expr)
    if isinstance(node, promql_parser.BinaryExpr):
        sides = (_value_type_of(node.lhs), _value_type_of(node.rhs))
        return "vector" if "vector" in sides else "scalar"
    return "none"


def _matchers(selector: Any) -> list[dict[str, str]]:
    if selector.matchers.or_matchers:
        # a promql-parser extension Prometheus' syntax tree has no place for
        raise QueryParseError(
            "1:1: parse error: 'or' between label matchers is not Prometheus PromQL"
        )
    out = [
        {"name": m.name, "value": m.value, "type": _MATCH_OPS[_name(m.op)]}
        for m in selector.matchers.matchers
    ]
    if selector.name:  # Prometheus adds the metric name's matcher after the others
        out.append({"name": "__name__", "value": selector.name, "type": "="})
    return out


def _at(node: Any) -> dict[str, Any]:
    at = at_modifier(node)
    if at is None:
        return {"timestamp": None, "startOrEnd": None}
    kind, ms = at
    if kind == "at":
        return {"timestamp": ms, "startOrEnd": None}
    return {"timestamp": None, "startOrEnd": kind}


def _has_time_before_1970(expr: Any) -> bool:
    found = False

    def visit(node: Any) -> bool:
        nonlocal found
        if getattr(node, "at", None) is not None:
            at = at_modifier(node)
            found = at is not None and at[0] == "at" and at[1] < 0
        return not found

    promql_parser.walk(expr, visit, None)
    return found


def _ms(duration: timedelta | None) -> int:
    """Whole milliseconds, exactly (no float rounding); negative durations stay negative."""
    if duration is None:
        return 0
    return (duration.days * 86_400 + duration.seconds) * 1000 + duration.microseconds // 1000


def _value_type(value_type: Any) -> str:
    return _name(value_type).lower()


def _name(enum_value: Any) -> str:
    """`Equal` of `MatchOp.Equal` (promql-parser's enums print as `Type.Member`)."""
    return str(enum_value).rpartition(".")[2]


def _number(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if value.is_integer() else value
