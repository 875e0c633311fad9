"""Duration expressions (Prometheus 3.14): `rate(x[5m+1m])`, `x[30s:step()*2]`,
`x offset (2*2)`, `min_of(range(), 8s)`.

promql-parser accepts only literal durations there, so before parsing, each range, subquery
resolution and offset that holds an expression is evaluated (in seconds, with PromQL's operator
precedence) and written back as a literal in milliseconds. `step()` and `range()` are the query's
step and range (both 0 for an instant query). An offset takes one operand, optionally signed:
`x offset 100 + 2` adds 2 to the result, as in Prometheus.
"""

from __future__ import annotations

import functools
import math
import re

from watchkeeper.promql.errors import QueryParseError
from watchkeeper.promql.positions import skip_string

_UNITS_MS = {
    "y": 31_536_000_000,
    "w": 604_800_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1000,
    "ms": 1,
}
_DURATION = re.compile(r"(?:\d+(?:ms|[ywdhms]))+")
_DURATION_PART = re.compile(r"(\d+)(ms|[ywdhms])")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_PLAIN = re.compile(r"\s*(?:(?:\d+(?:ms|[ywdhms]))+|\d+(?:\.\d+)?)\s*")
_SIGNED_PLAIN = re.compile(r"[+-]?\s*(?:(?:\d+(?:ms|[ywdhms]))+|\d+(?:\.\d+)?)(?![\w.(])")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Parser:
    """Recursive descent over one duration expression; values are seconds."""

    def __init__(self, text: str, pos: int, step_s: float, range_s: float) -> None:
        self.text = text
        self.pos = pos
        self.step_s = step_s
        self.range_s = range_s

    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _peek(self) -> str:
        self._skip()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _expect(self, ch: str) -> None:
        if self._peek() != ch:
            raise QueryParseError(f"1:{self.pos + 1}: parse error: expected {ch!r} in duration")
        self.pos += 1

    def expression(self) -> float:
        value = self.term()
        while self._peek() in ("+", "-"):
            op = self.text[self.pos]
            self.pos += 1
            rhs = self.term()
            value = value + rhs if op == "+" else value - rhs
        return value

    def term(self) -> float:
        value = self.unary()
        while self._peek() in ("*", "/", "%"):
            op = self.text[self.pos]
            self.pos += 1
            rhs = self.unary()
            if op == "*":
                value *= rhs
            elif rhs == 0:
                raise QueryParseError("1:1: parse error: division by zero in duration expression")
            else:
                value = value / rhs if op == "/" else math.fmod(value, rhs)
        return value

    def unary(self) -> float:
        ch = self._peek()
        if ch in ("+", "-"):
            self.pos += 1
            value = self.unary()
            return -value if ch == "-" else value
        return self.power()

    def signed_primary(self) -> float:
        """An offset's operand: signs, then one primary (a following `^` is not its own)."""
        ch = self._peek()
        if ch in ("+", "-"):
            self.pos += 1
            value = self.signed_primary()
            return -value if ch == "-" else value
        return self.primary()

    def power(self) -> float:
        base = self.primary()
        if self._peek() == "^":
            self.pos += 1
            return float(base ** self.unary())
        return base

    def primary(self) -> float:
        ch = self._peek()
        if ch == "(":
            self.pos += 1
            value = self.expression()
            self._expect(")")
            return value
        duration = _DURATION.match(self.text, self.pos)
        if duration:
            self.pos = duration.end()
            return (
                sum(
                    int(n) * _UNITS_MS[unit] for n, unit in _DURATION_PART.findall(duration.group())
                )
                / 1000.0
            )
        number = _NUMBER.match(self.text, self.pos)
        if number:
            self.pos = number.end()
            token = number.group()
            return float(int(token, 16)) if token.lower().startswith("0x") else float(token)
        ident = _IDENT.match(self.text, self.pos)
        if ident:
            name = ident.group().lower()
            self.pos = ident.end()
            self._expect("(")
            args: list[float] = []
            if self._peek() != ")":
                args.append(self.expression())
                while self._peek() == ",":
                    self.pos += 1
                    args.append(self.expression())
            self._expect(")")
            if name == "step" and not args:
                return self.step_s
            if name == "range" and not args:
                return self.range_s
            if name in ("min_of", "max_of") and args:
                return min(args) if name == "min_of" else max(args)
            raise QueryParseError(f"1:1: parse error: unknown duration function {name}()")
        raise QueryParseError(f"1:{self.pos + 1}: parse error: unexpected {ch!r} in duration")


def _literal(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


# rules and dashboards send the same text with the same step and range again and again; the
# scan takes 30-60 us of a 250 us rule evaluation
@functools.lru_cache(maxsize=4096)
def rewrite(query: str, step_ms: int, range_ms: int) -> str:
    """The query with every duration expression replaced by a literal."""
    if "[" not in query and "offset" not in query.lower():
        return query
    step_s, range_s = step_ms / 1000.0, range_ms / 1000.0
    out: list[str] = []
    i = 0
    while i < len(query):
        ch = query[i]
        if ch in "\"'`":
            end = skip_string(query, i)
            out.append(query[i:end])
            i = end
        elif ch == "{":
            end = i + 1
            while end < len(query) and query[end] != "}":
                end = skip_string(query, end) if query[end] in "\"'`" else end + 1
            out.append(query[i : end + 1])
            i = end + 1
        elif ch == "[":
            end = query.find("]", i)
            if end < 0:
                out.append(query[i:])
                break
            out.append("[" + _rewrite_brackets(query[i + 1 : end], step_s, range_s) + "]")
            i = end + 1
        elif ch.isalpha() or ch == "_":
            word = _IDENT.match(query, i)
            assert word is not None
            out.append(word.group())
            i = word.end()
            if word.group().lower() == "offset":
                i = _rewrite_offset(query, i, out, step_s, range_s)
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _rewrite_brackets(content: str, step_s: float, range_s: float) -> str:
    parts: list[str] = []
    depth = 0
    start = 0
    for index, ch in enumerate(content):
        depth += ch == "("
        depth -= ch == ")"
        if ch == ":" and depth == 0:
            parts.append(content[start:index])
            start = index + 1
    parts.append(content[start:])
    rewritten = []
    for part in parts:
        if not part.strip() or _PLAIN.fullmatch(part):
            rewritten.append(part)
            continue
        parser = _Parser(part, 0, step_s, range_s)
        value = parser.expression()
        if parser._peek():
            raise QueryParseError(f"1:1: parse error: unexpected text in duration: {part!r}")
        rewritten.append(_literal(value))
    return ":".join(rewritten)


def _rewrite_offset(query: str, i: int, out: list[str], step_s: float, range_s: float) -> int:
    """Rewrites the operand after `offset` at `i`; returns where the rest of the query starts."""
    j = i
    while j < len(query) and query[j].isspace():
        j += 1
    if _SIGNED_PLAIN.match(query, j):
        return i
    parser = _Parser(query, j, step_s, range_s)
    value = parser.signed_primary()
    if round(value * 1000) == 0:
        out.pop()  # a zero offset is no offset (the parser rejects `offset 0ms`)
    else:
        out.append(" " + _literal(value))
    return parser.pos
