"""The native histogram trim operators `</` and `>/` (Prometheus 3.x), which promql-parser's
grammar does not have. They bind as the comparison operators do, so the query is parsed with
`<` and `>` in their place, and the comparison nodes that stand for them are found again by
their order: comparison operators appear in the text in the order an in-order walk of the tree
meets them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import promql_parser as pp

from watchkeeper.promql.ast import children
from watchkeeper.promql.errors import QueryParseError
from watchkeeper.promql.positions import skip_string

TRIM_UPPER, TRIM_LOWER = "</", ">/"
TRIM_OPERATORS = (TRIM_UPPER, TRIM_LOWER)
_STAND_IN = {TRIM_UPPER: "<", TRIM_LOWER: ">"}
_COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")


def has_trims(text: str) -> bool:
    """A cheap first look: whether the text may hold a trim operator."""
    return TRIM_UPPER in text or TRIM_LOWER in text


def _operators(text: str) -> Iterator[tuple[int, str]]:
    """Where each comparison or trim operator starts, and which it is, in text order; strings,
    comments and label matchers (`{...}`, whose `!=` is no operator) are skipped."""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "\"'`":
            i = skip_string(text, i)
        elif ch == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif ch == "{":
            i = _past_braces(text, i)
        else:
            pair = text[i : i + 2]
            if pair in _STAND_IN or pair in _COMPARISONS:
                yield i, pair
                i += 2
            elif ch in "<>":
                yield i, ch
                i += 1
            else:
                i += 1


def _past_braces(text: str, i: int) -> int:
    i += 1
    while i < len(text) and text[i] != "}":
        i = skip_string(text, i) if text[i] in "\"'`" else i + 1
    return i + 1


def without_trims(text: str) -> str:
    """The text with each trim operator replaced by the comparison of the same precedence."""
    if not has_trims(text):
        return text
    out, last = [], 0
    for start, op in _operators(text):
        if op in _STAND_IN:
            out += [text[last:start], _STAND_IN[op], " "]  # same length: positions hold
            last = start + 2
    return "".join([*out, text[last:]])


def restore_trims(printed: str, written: str) -> str:
    """`printed` (a tree parsed from `without_trims(written)`, printed back: its comparison
    operators in the same order) with the trim operators of `written` in their places again."""
    if not has_trims(written):
        return printed
    wanted = {k: op for k, (_, op) in enumerate(_operators(written)) if op in _STAND_IN}
    out, last = [], 0
    for k, (start, op) in enumerate(_operators(printed)):
        if k in wanted:
            out += [printed[last:start], wanted[k]]
            last = start + len(op)
    return "".join([*out, printed[last:]])


def trim_nodes(text: str, tree: Any) -> dict[int, str]:
    """The trim operators of `text` (as written) by the id of the comparison node of `tree`
    (parsed from `without_trims(text)`) that stands for each; empty when there is none."""
    if not has_trims(text):
        return {}
    written = [op for _, op in _operators(text)]
    nodes = list(_comparisons_in_order(tree))
    if len(nodes) != len(written):
        raise QueryParseError("1:1: parse error: cannot place the trim operators </ and >/")
    return {id(node): op for node, op in zip(nodes, written, strict=True) if op in _STAND_IN}


def _comparisons_in_order(node: Any) -> Iterator[Any]:
    if isinstance(node, pp.BinaryExpr):
        yield from _comparisons_in_order(node.lhs)
        if str(node.op) in _COMPARISONS:
            yield node
        yield from _comparisons_in_order(node.rhs)
        return
    for child in children(node):
        yield from _comparisons_in_order(child)
