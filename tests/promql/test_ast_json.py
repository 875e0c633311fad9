"""PromQL syntax answers: Prometheus' pretty form and its parse_query JSON (translate_ast.go)."""

from __future__ import annotations

import pytest

from watchkeeper.promql.ast_json import format_query, parse_query
from watchkeeper.promql.errors import QueryParseError


def _selector(name: str, *matchers: dict[str, str], **fields: object) -> dict[str, object]:
    node: dict[str, object] = {
        "type": "vectorSelector",
        "name": name,
        "offset": 0,
        "offsetExpr": None,
        "matchers": [*matchers, {"name": "__name__", "value": name, "type": "="}],
        "timestamp": None,
        "startOrEnd": None,
        "anchored": False,
        "smoothed": False,
    }
    node.update(fields)
    return node


def test_aggregation_over_a_call_over_a_matrix_selector() -> None:
    tree = parse_query('sum without (instance) (rate(http_total{code=~"5.."}[5m] offset 1m))')
    assert tree == {
        "type": "aggregation",
        "op": "sum",
        "expr": {
            "type": "call",
            "func": {
                "name": "rate",
                "argTypes": ["matrix"],
                "variadic": 0,
                "returnType": "vector",
            },
            "args": [
                {
                    "type": "matrixSelector",
                    "name": "http_total",
                    "range": 300_000,
                    "rangeExpr": None,
                    "offset": 60_000,
                    "offsetExpr": None,
                    "matchers": [
                        {"name": "code", "value": "5..", "type": "=~"},
                        {"name": "__name__", "value": "http_total", "type": "="},
                    ],
                    "timestamp": None,
                    "startOrEnd": None,
                    "anchored": False,
                    "smoothed": False,
                }
            ],
        },
        "param": None,
        "grouping": ["instance"],
        "without": True,
    }


def test_binary_expressions_and_their_vector_matching() -> None:
    tree = parse_query("a / on (job) group_left (team) b")
    assert tree == {
        "type": "binaryExpr",
        "op": "/",
        "lhs": _selector("a"),
        "rhs": _selector("b"),
        "matching": {
            "card": "many-to-one",
            "labels": ["job"],
            "on": True,
            "include": ["team"],
            "fillValues": {"lhs": None, "rhs": None},
        },
        "bool": False,
    }
    # two vectors always have matching (set operators many-to-many); with a scalar, none
    plain = parse_query("a > b")["matching"]
    assert plain == {
        "card": "one-to-one",
        "labels": [],
        "on": False,
        "include": [],
        "fillValues": {"lhs": None, "rhs": None},
    }
    assert parse_query("a unless ignoring (x) b")["matching"]["card"] == "many-to-many"
    assert parse_query("a unless ignoring (x) b")["matching"]["labels"] == ["x"]
    scalar_side = parse_query("a > bool 1")
    assert scalar_side["matching"] is None and scalar_side["bool"] is True
    assert parse_query("1 + 2")["matching"] is None


def test_subquery_at_modifiers_literals_and_unary() -> None:
    tree = parse_query(
        'topk(3, -max_over_time(x[10m:30s] @ end())) > 1.5e3 or count_values("s", y)'
    )
    assert tree["op"] == "or"
    top = tree["lhs"]["lhs"]
    assert top["type"] == "aggregation" and top["param"] == {"type": "numberLiteral", "val": "3"}
    unary = top["expr"]
    assert unary["type"] == "unaryExpr" and unary["op"] == "-"
    subquery = unary["expr"]["args"][0]
    assert subquery == {
        "type": "subquery",
        "expr": _selector("x"),
        "range": 600_000,
        "rangeExpr": None,
        "offset": 0,
        "offsetExpr": None,
        "step": 30_000,
        "stepExpr": None,
        "timestamp": None,
        "startOrEnd": "end",
    }
    assert tree["lhs"]["rhs"] == {"type": "numberLiteral", "val": "1500"}
    assert tree["rhs"]["param"] == {"type": "stringLiteral", "val": "s"}
    assert parse_query("x @ 1700000000.5")["timestamp"] == 1_700_000_000_500
    assert parse_query("x offset -5m")["offset"] == -300_000
    assert parse_query("(x)") == {"type": "parenExpr", "expr": _selector("x")}
    label_join = parse_query('label_join(x, "d", ",", "a", "b")')["func"]
    assert label_join["variadic"] == -1
    assert label_join["argTypes"] == ["vector", "string", "string", "string"]


def test_selector_without_a_metric_name() -> None:
    assert parse_query('{__name__=~"up|down", job!="a"}')["matchers"] == [
        {"name": "__name__", "value": "up|down", "type": "=~"},
        {"name": "job", "value": "a", "type": "!="},
    ]


def test_format_query_is_prometheus_pretty_form() -> None:
    assert format_query("sum(rate(x[5m]))by(job)") == "sum by (job) (rate(x[5m]))"
    assert format_query('foo{b="1",a="2"}') == 'foo{a="2",b="1"}'
    long = format_query(
        'sum by (job, instance) (rate(http_requests_total{job="api-server", code=~"5.."}[5m]))'
        " / on (job, instance) sum by (job, instance) (rate(http_requests_total[5m]))"
    )
    assert long == (
        '  sum by (job, instance) (rate(http_requests_total{code=~"5..",job="api-server"}[5m]))\n'
        "/ on (job, instance)\n"
        "  sum by (job, instance) (rate(http_requests_total[5m]))"
    )


@pytest.mark.parametrize("text", ["sum(", "", "x{", "foo bar", '{a=""}', "x[5m+1m]"])
def test_not_promql(text: str) -> None:
    with pytest.raises(QueryParseError) as caught:
        parse_query(text)
    assert caught.value.kind == "bad_data"
    with pytest.raises(QueryParseError):
        format_query(text)
