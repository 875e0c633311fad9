"""Binary operators meeting native histogram samples: the samples travel through binops.py's
float machinery as NaN tokens, and each element where a histogram meets an operator is worked
on one by one, as Prometheus' vectorElemBinop does."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from watchkeeper.model.histogram import GAUGE, FloatHistogram
from watchkeeper.model.histogram_trim import trimmed
from watchkeeper.promql.errors import QueryError
from watchkeeper.promql.native_histograms import MIXED_SCHEMAS, RECONCILED, reconciled, steps_of
from watchkeeper.promql.trim_operators import TRIM_OPERATORS, TRIM_UPPER
from watchkeeper.promql.values import Bools, Floats, HistogramSteps, InstantSteps, Value

if TYPE_CHECKING:
    from watchkeeper.promql.evaluator import Evaluator

_TOKEN_TAG = 0x7FF4_0000_0000_0000  # a signalling NaN no arithmetic here produces
_TOKEN_MASK = 0xFFFC_0000_0000_0000
_DROP = 0  # token 0: an element an operator leaves out
_ABSENT = 1  # token 1: no sample there (so no annotation for what meets it)


class Tokens:
    """Native histogram samples passed through the float operator machinery as NaN tokens
    (an index into `table` in the payload), so matching, grouping and filtering work as for
    floats, and `apply` works on each element where a histogram meets an operator (Prometheus'
    vectorElemBinop)."""

    def __init__(self, ev: Evaluator, base: Callable[..., tuple[Floats, Bools | None]]) -> None:
        self.ev = ev
        self.base = base
        self.table: list[FloatHistogram | None] = [None, None]
        self.absent = self.token(None, _ABSENT)

    def token(self, histogram: FloatHistogram | None, index: int = _DROP) -> float:
        if histogram is not None:
            index = len(self.table)
            self.table.append(histogram)
        return float(np.array([_TOKEN_TAG | index], dtype=np.uint64).view(np.float64)[0])

    def tokens_in(self, values: Floats) -> Bools:
        found: Bools = (values.view(np.uint64) & np.uint64(_TOKEN_MASK)) == np.uint64(_TOKEN_TAG)
        return found

    def encode(self, value: Value) -> Value:
        """An operand with its histograms, and the places without a sample, as tokens."""
        if isinstance(value, HistogramSteps):
            floats = value.floats
        elif isinstance(value, InstantSteps):
            floats = value
        else:
            return value
        if self.tokens_in(floats.values[floats.present]).any():
            raise QueryError("a float sample has the bits the engine marks histograms with")
        values, present = floats.values.copy(), floats.present.copy()
        if isinstance(value, HistogramSteps):
            for i, found in enumerate(value.histograms):
                for j, histogram in found.items():
                    values[i, j] = self.token(histogram)
                    present[i, j] = True
        values[~present] = self.absent
        return InstantSteps(floats.labels, values, present, floats.sample_ts)

    def _value(self, x: float) -> float | FloatHistogram:
        if not self.tokens_in(np.array([x]))[0]:
            return x
        found = self.table[int(np.array([x]).view(np.uint64)[0] & ~np.uint64(_TOKEN_MASK))]
        assert found is not None
        return found

    def apply(
        self, op: str, lhs: Floats, rhs: Floats, return_bool: bool
    ) -> tuple[Floats, Bools | None]:
        lhs, rhs = np.broadcast_arrays(np.asarray(lhs), np.asarray(rhs))
        absent = (lhs.view(np.uint64) == np.float64(self.absent).view(np.uint64)) | (
            rhs.view(np.uint64) == np.float64(self.absent).view(np.uint64)
        )
        special = (self.tokens_in(lhs) | self.tokens_in(rhs)) & ~absent
        if op in TRIM_OPERATORS:  # they take histograms only: every float element is told so
            special = ~absent
        values, keep = self.base(op, lhs, rhs, return_bool)
        if not special.any():
            return values, keep
        values = np.array(values, dtype=np.float64)
        keep = None if keep is None else np.array(keep, dtype=bool)
        for index in zip(*np.nonzero(special), strict=True):
            a, b = self._value(float(lhs[index])), self._value(float(rhs[index]))
            result, passes = self._element(op, a, b)
            if op in TRIM_OPERATORS:
                assert keep is not None  # binops._apply gives trims a mask
                keep[index] = passes
                values[index] = self.token(result if isinstance(result, FloatHistogram) else None)
            elif keep is not None:  # a filter: the left side's own sample, if it passes
                keep[index] = passes
            elif return_bool and op in _COMPARISONS:
                values[index] = float(passes) if result is not None else self.token(None)
            else:
                values[index] = result if isinstance(result, float) else self.token(result)
        return values, keep

    def _element(
        self, op: str, a: float | FloatHistogram, b: float | FloatHistogram
    ) -> tuple[float | FloatHistogram | None, bool]:
        """The result of one element (None: left out) and whether a comparison passes."""
        left, right = isinstance(a, FloatHistogram), isinstance(b, FloatHistogram)
        try:
            if left and right:
                assert isinstance(a, FloatHistogram) and isinstance(b, FloatHistogram)
                if op in ("+", "-") and reconciled([a, b]):
                    kind = "addition" if op == "+" else "subtraction"
                    self.ev.ctx.annotations.info(f"PromQL info: {RECONCILED} {kind} (1:1)")
                if op == "+":
                    return a.add(b).compacted(), True
                if op == "-":
                    return a.add(b, negate=True).with_hint(GAUGE).compacted(), True
                if op in ("==", "!="):
                    same = a.compacted().same_as(b.compacted()) and a.sum == b.sum
                    return a, same if op == "==" else not same
            elif left and isinstance(b, float):
                assert isinstance(a, FloatHistogram)
                if op in TRIM_OPERATORS:
                    return trimmed(a, b, upper=op == TRIM_UPPER), True
                if op == "*":
                    return a.scaled(b).compacted(), True
                if op == "/":
                    return a.divided(b).compacted(), True
            elif right and isinstance(a, float) and op == "*":
                assert isinstance(b, FloatHistogram)
                return b.scaled(a).compacted(), True
        except ValueError:
            self.ev.ctx.annotations.warn(
                f"PromQL warning: {MIXED_SCHEMAS.rsplit(' for ', 1)[0]} (1:1)"
            )
            return None, False
        kinds = ["histogram" if x else "float" for x in (left, right)]
        self.ev.ctx.annotations.info(
            "PromQL info: incompatible sample types encountered for binary operator "
            f'"{op}": {kinds[0]} {op} {kinds[1]} (1:1)'
        )
        return None, False

    def decode(self, value: Value) -> Value:
        """The operator's result with its tokens made histograms again (or left out)."""
        if not isinstance(value, InstantSteps):
            return value
        marked = self.tokens_in(value.values) & value.present
        if not marked.any():
            return value
        values, present = value.values.copy(), value.present.copy()
        maps: list[dict[int, FloatHistogram]] = [{} for _ in value.labels]
        for i, j in zip(*np.nonzero(marked), strict=True):
            index = int(values[i : i + 1, j].view(np.uint64)[0] & ~np.uint64(_TOKEN_MASK))
            found = self.table[index]  # None: left out
            values[i, j] = np.nan
            present[i, j] = False
            if isinstance(found, FloatHistogram):
                maps[int(i)][int(j)] = found
        return steps_of(value.labels, values, present, maps)


_COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}
