"""FORMAT.md §4.3 step 2: the query with `@ T` added to every selector and subquery that has
none (nothing inside a subquery is touched, since the subquery itself then has an `@`), printed
back to PromQL text.

The printer writes every operand in parentheses and every duration in milliseconds, so the text
differs from Prometheus' printer; results do not, which is what the re-runs check.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import promql_parser as pp

from watchkeeper.promql.ast import at_modifier, duration_ms, walk

# §4.3 step 2 is skipped for expressions calling any of these.
TIME_DEPENDENT = {
    "time",
    "timestamp",
    "minute",
    "hour",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "month",
    "year",
    "predict_linear",
    "start",
    "end",
    "range",
    "step",
}
_LEGACY_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_MATCH_OPS = {
    "MatchOp.Equal": "=",
    "MatchOp.NotEqual": "!=",
    "MatchOp.Re": "=~",
    "MatchOp.NotRe": "!~",
}


def is_time_dependent(expr: Any) -> bool:
    return any(isinstance(n, pp.Call) and n.func.name in TIME_DEPENDENT for n in walk(expr))


def pin(expr: Any, at_ms: int, trims: dict[int, str] | None = None) -> str:
    """`trims`: the trim operators (`</`, `>/`) by the id of the node parsed in their place
    (watchkeeper.promql.trim_operators.trim_nodes)."""
    return _Printer(at_ms, trims or {}).print(expr, pinned=True)


def _name(name: str) -> str:
    return name if _LEGACY_NAME.fullmatch(name) else json.dumps(name)


def _labels(names: list[str]) -> str:
    return "(" + ", ".join(_name(n) for n in names) + ")"


class _Printer:
    def __init__(self, at_ms: int, trims: dict[int, str]) -> None:
        self.at = f" @ {at_ms / 1000:.3f}"
        self.trims = trims

    def _modifiers(self, node: Any, pinned: bool) -> str:
        text = ""
        offset = duration_ms(node.offset)
        if offset:
            text += f" offset {offset}ms"
        at = at_modifier(node)
        if at is None:
            return text + (self.at if pinned else "")
        kind, when = at
        return text + (f" @ {kind}()" if kind in ("start", "end") else f" @ {when / 1000:.3f}")

    def _selector(self, node: Any) -> str:
        sets = node.matchers.or_matchers or [node.matchers.matchers]
        rendered = [
            ", ".join(
                f"{_name(m.name)}{_MATCH_OPS[str(m.op)]}{json.dumps(m.value)}" for m in matchers
            )
            for matchers in sets
        ]
        inner = " or ".join(r for r in rendered if r)
        if node.name and _LEGACY_NAME.fullmatch(node.name):
            return node.name + ("{" + inner + "}" if inner else "")
        parts = [json.dumps(node.name)] if node.name else []
        return "{" + ", ".join(parts + ([inner] if inner else [])) + "}"

    def print(self, node: Any, pinned: bool) -> str:
        if isinstance(node, pp.NumberLiteral):
            value = float(node.val)
            if math.isnan(value):
                return "NaN"
            if math.isinf(value):
                return "Inf" if value > 0 else "-Inf"
            return repr(value)
        if isinstance(node, pp.StringLiteral):
            return json.dumps(node.val)
        if isinstance(node, pp.VectorSelector):
            return self._selector(node) + self._modifiers(node, pinned)
        if isinstance(node, pp.MatrixSelector):
            vs = node.vector_selector
            return (
                self._selector(vs) + f"[{duration_ms(node.range)}ms]" + self._modifiers(vs, pinned)
            )
        if isinstance(node, pp.SubqueryExpr):
            # the subquery gets (or has) its `@`; nothing inside it is touched, as in
            # Prometheus' harness (it skips nodes under a subquery with an `@`)
            inner = self.print(node.expr, pinned=False)
            step = duration_ms(node.step)
            resolution = f"{step}ms" if step else ""
            return f"({inner})[{duration_ms(node.range)}ms:{resolution}]" + self._modifiers(
                node, pinned
            )
        if isinstance(node, pp.ParenExpr):
            return "(" + self.print(node.expr, pinned) + ")"
        if isinstance(node, pp.UnaryExpr):
            return "-(" + self.print(node.expr, pinned) + ")"
        if isinstance(node, pp.Call):
            args = ", ".join(self.print(a, pinned) for a in node.args)
            return f"{node.func.name}({args})"
        if isinstance(node, pp.AggregateExpr):
            grouping = ""
            if node.modifier is not None:
                kind = "by" if str(node.modifier.type).endswith("By") else "without"
                grouping = f" {kind} {_labels(list(node.modifier.labels))}"
            args = [self.print(node.param, pinned)] if node.param is not None else []
            args.append(self.print(node.expr, pinned))
            return f"{node.op}{grouping}(" + ", ".join(args) + ")"
        if isinstance(node, pp.BinaryExpr):
            return self._binary(node, pinned)
        raise TypeError(f"cannot print {type(node).__name__}")

    def _binary(self, node: Any, pinned: bool) -> str:
        text = f" {self.trims.get(id(node)) or node.op} "
        modifier = node.modifier
        if modifier is not None:
            if modifier.return_bool:
                text += "bool "
            matching = modifier.matching
            if matching is not None:
                kind = "on" if str(matching.type).endswith("Include") else "ignoring"
                text += f"{kind}{_labels(list(matching.labels))} "
            card = str(modifier.card).rsplit(".", 1)[-1]
            if card in ("ManyToOne", "OneToMany"):
                side = "group_left" if card == "ManyToOne" else "group_right"
                text += f"{side}{_labels(list(modifier.group_labels or []))} "
        return (
            "("
            + self.print(node.lhs, pinned)
            + ")"
            + text
            + "("
            + self.print(node.rhs, pinned)
            + ")"
        )
