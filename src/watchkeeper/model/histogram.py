"""Native histograms: Prometheus' float histogram sample, its text notation, its JSON form in
the query API, the reset rules between two samples, and a compact binary form for storage.

A native histogram has exponential buckets (schema -4 ... 8: bucket `i` of the positive side
covers (base^(i-1), base^i] with base = 2^(2^-schema); the negative side mirrors it), a zero
bucket [-zero_threshold, zero_threshold], or custom buckets (schema -53, NHCB: bucket `i`
covers (custom_values[i-1], custom_values[i]], the last one up to +Inf). Buckets are sparse:
spans of consecutive indices, as (offset, length) pairs whose first offset is the index of the
first bucket and the others the gap since the previous span (Prometheus' layout, so what a
client sent can be given back unchanged). Counts here are absolute, as in Prometheus'
FloatHistogram; the integer histograms of the wire format (delta-encoded counts) are made
float on ingest.
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, localcontext
from functools import cache, lru_cache

from watchkeeper.model.gofloat import format_g

CUSTOM_BUCKETS_SCHEMA = -53
MIN_SCHEMA, MAX_SCHEMA = -4, 8

# Prometheus' CounterResetHint values, in its order (they are on the wire in remote_write)
UNKNOWN, RESET, NOT_RESET, GAUGE = 0, 1, 2, 3
HINT_NAMES = {UNKNOWN: "unknown", RESET: "reset", NOT_RESET: "not_reset", GAUGE: "gauge"}

Spans = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class FloatHistogram:
    schema: int = 0
    count: float = 0.0
    sum: float = 0.0
    zero_threshold: float = 0.0
    zero_count: float = 0.0
    positive_spans: Spans = ()
    positive_buckets: tuple[float, ...] = ()
    negative_spans: Spans = ()
    negative_buckets: tuple[float, ...] = ()
    custom_values: tuple[float, ...] = ()
    counter_reset_hint: int = UNKNOWN

    @property
    def uses_custom_buckets(self) -> bool:
        return self.schema == CUSTOM_BUCKETS_SCHEMA

    def positive(self) -> dict[int, float]:
        """The positive buckets by index (empty ones inside spans included)."""
        return _bucket_map(self.positive_spans, self.positive_buckets)

    def negative(self) -> dict[int, float]:
        return _bucket_map(self.negative_spans, self.negative_buckets)

    def _with(self, **changes: object) -> FloatHistogram:
        """dataclasses.replace, without its generic (and, per sample, costly) machinery."""
        fields = {
            "schema": self.schema,
            "count": self.count,
            "sum": self.sum,
            "zero_threshold": self.zero_threshold,
            "zero_count": self.zero_count,
            "positive_spans": self.positive_spans,
            "positive_buckets": self.positive_buckets,
            "negative_spans": self.negative_spans,
            "negative_buckets": self.negative_buckets,
            "custom_values": self.custom_values,
            "counter_reset_hint": self.counter_reset_hint,
        }
        fields.update(changes)
        return FloatHistogram(**fields)  # type: ignore[arg-type]

    def _with_buckets(
        self, positive: Mapping[int, float], negative: Mapping[int, float], **changes: object
    ) -> FloatHistogram:
        """`_with` and both sides' buckets laid out from counts by index."""
        pos_spans, pos_buckets = spans_from_map(positive)
        neg_spans, neg_buckets = spans_from_map(negative)
        return self._with(
            positive_spans=pos_spans,
            positive_buckets=pos_buckets,
            negative_spans=neg_spans,
            negative_buckets=neg_buckets,
            **changes,
        )

    def with_hint(self, hint: int) -> FloatHistogram:
        if hint == self.counter_reset_hint:
            return self
        # the constructor, not dataclasses.replace: stored hints are set on every sample
        return FloatHistogram(
            self.schema,
            self.count,
            self.sum,
            self.zero_threshold,
            self.zero_count,
            self.positive_spans,
            self.positive_buckets,
            self.negative_spans,
            self.negative_buckets,
            self.custom_values,
            hint,
        )

    def validate(self) -> None:
        """ValueError naming what makes this histogram unusable (Prometheus' Validate)."""
        custom = self.uses_custom_buckets
        if not custom and not MIN_SCHEMA <= self.schema <= MAX_SCHEMA:
            raise ValueError(
                f"histogram schema {self.schema} is not in {MIN_SCHEMA}..{MAX_SCHEMA} "
                f"or {CUSTOM_BUCKETS_SCHEMA} (custom buckets)"
            )
        for side, spans, buckets in (
            ("positive", self.positive_spans, self.positive_buckets),
            ("negative", self.negative_spans, self.negative_buckets),
        ):
            if sum(length for _, length in spans) != len(buckets):
                raise ValueError(
                    f"histogram {side} spans cover {sum(n for _, n in spans)} buckets, "
                    f"but {len(buckets)} are given"
                )
            if any(offset < 0 for offset, _ in spans[1:]):
                raise ValueError(f"histogram {side} span offsets after the first are negative")
        if custom:
            if self.negative_buckets or self.zero_count or self.zero_threshold:
                raise ValueError(
                    "a histogram with custom buckets has no negative buckets and no zero bucket"
                )
            values = self.custom_values
            if any(not low < high for low, high in itertools.pairwise(values)):
                raise ValueError("histogram custom_values must be strictly increasing")
            if values and math.isinf(values[-1]) and values[-1] > 0:
                raise ValueError("histogram custom_values must not end in +Inf (it is implied)")
            top = max(self.positive(), default=-1)
            if top > len(values) or min(self.positive(), default=0) < 0:
                raise ValueError(
                    f"histogram bucket index {top} is outside its {len(values) + 1} custom buckets"
                )
        elif self.custom_values:
            raise ValueError("only histograms of schema -53 have custom_values")
        if self.zero_threshold < 0 or math.isnan(self.zero_threshold):
            raise ValueError("histogram zero_threshold must be a number at least 0")

    def buckets(self, clamp: bool = True) -> Iterator[tuple[int, float, float, float]]:
        """Every bucket with a count, as the query API lists them (Prometheus'
        AllBucketIterator): (boundary rule, lower, upper, count), negative buckets from -Inf
        up, then the zero bucket, then the positive ones. Boundary rules: 0 open on the left,
        1 open on the right, 3 closed (the zero bucket, and the first custom bucket). A bound
        inside the zero bucket is shown at its edge, unless `clamp` is off."""
        schema, values, zero = self.schema, self.custom_values, self.zero_threshold
        for side, index, count in self.bucket_indexes():
            yield *bucket_edges(schema, values, zero, side, index, clamp), count

    def bucket_indexes(self) -> Iterator[tuple[int, int, float]]:
        """(side, index, count) of every bucket with a count, in `buckets`' order: side -1
        for a negative bucket, 0 for the zero bucket (index 0), 1 for a positive one."""
        places = bucket_places(self.negative_spans, bool(self.zero_count), self.positive_spans)
        for (side, index), count in zip(places, self.ordered_counts(), strict=False):
            if count:
                yield side, index, count

    def ordered_counts(self) -> list[float]:
        """The counts laid out (empty buckets too), in `bucket_places`' order."""
        zero = (self.zero_count,) if self.zero_count else ()
        return [*reversed(self.negative_buckets), *zero, *self.positive_buckets]

    def go_string(self) -> str:
        """Prometheus' FloatHistogram.String(), which count_values labels a histogram with:
        `{count:4, sum:5, [-2,-1):1, [-0.001,0.001]:1, (0.5,1]:2}`, the buckets with a count,
        their bounds as they are (not cut at the zero bucket)."""
        parts = [f"count:{format_g(self.count)}", f"sum:{format_g(self.sum)}"]
        for rule, lower, upper, count in self.buckets(clamp=False):
            left = "[" if rule in (1, 3) else "("
            right = "]" if rule in (0, 3) else ")"
            parts.append(f"{left}{format_g(lower)},{format_g(upper)}{right}:{format_g(count)}")
        return "{" + ", ".join(parts) + "}"

    def test_expression(self) -> str:
        """The `{{...}}` notation as Prometheus prints it (FloatHistogram.TestExpression):
        zero fields left out, each side's buckets as one span from its first to its last
        non-empty bucket. Rule unit tests compare histograms by this text."""
        parts = []
        if self.schema:
            parts.append(f"schema:{self.schema}")
        for key, value in (
            ("count", self.count),
            ("sum", self.sum),
            ("z_bucket", self.zero_count),
            ("z_bucket_w", self.zero_threshold),
        ):
            if value:
                parts.append(f"{key}:{format_g(value)}")
        if self.uses_custom_buckets:
            parts.append(f"custom_values:[{' '.join(format_g(v) for v in self.custom_values)}]")
        if self.counter_reset_hint != UNKNOWN:
            parts.append(f"counter_reset_hint:{HINT_NAMES[self.counter_reset_hint]}")
        for offset_key, buckets_key, found in (
            ("offset", "buckets", self.positive()),
            ("n_offset", "n_buckets", self.negative()),
        ):
            used = [index for index, count in found.items() if count]
            if not used:
                continue
            low, high = min(used), max(used)
            if low:
                parts.append(f"{offset_key}:{low}")
            counts = (format_g(found.get(i, 0.0)) for i in range(low, high + 1))
            parts.append(f"{buckets_key}:[{' '.join(counts)}]")
        return "{{" + " ".join(parts) + "}}"

    def __str__(self) -> str:
        return self.test_expression()

    # --- arithmetic -------------------------------------------------------------------------

    def add(self, other: FloatHistogram, negate: bool = False) -> FloatHistogram:
        """self + other (self - other with `negate`), bucket by bucket: the finer schema is
        reduced to the coarser one and the narrower zero bucket widened to the wider one, as
        Prometheus does. ValueError when custom bucket bounds differ."""
        sign = -1.0 if negate else 1.0
        if (
            self.schema == other.schema
            and self.zero_threshold == other.zero_threshold
            and self.positive_spans == other.positive_spans
            and self.negative_spans == other.negative_spans
            and self.custom_values == other.custom_values
        ):
            # the usual case, the same layout: counts added in place
            combine = operator.sub if negate else operator.add
            return self._with(
                count=combine(self.count, other.count),
                sum=combine(self.sum, other.sum),
                zero_count=combine(self.zero_count, other.zero_count),
                positive_buckets=tuple(map(combine, self.positive_buckets, other.positive_buckets)),
                negative_buckets=tuple(map(combine, self.negative_buckets, other.negative_buckets)),
                counter_reset_hint=combined_hint(self.counter_reset_hint, other.counter_reset_hint),
            )
        if self.uses_custom_buckets != other.uses_custom_buckets:
            raise ValueError("histograms with exponential and custom buckets cannot be added")
        if self.uses_custom_buckets and self.custom_values != other.custom_values:
            # Prometheus 3.14: both to the bounds they have in common
            common = intersect_bounds(self.custom_values, other.custom_values)
            self, other = self.on_bounds(common), other.on_bounds(common)  # noqa: PLW0642
        schema = min(self.schema, other.schema)
        mine, theirs = self.reduced(schema), other.reduced(schema)
        threshold = max(mine.zero_threshold, theirs.zero_threshold)
        mine, theirs = mine.widened(threshold), theirs.widened(threshold)
        threshold = max(mine.zero_threshold, theirs.zero_threshold)
        mine, theirs = mine.widened(threshold), theirs.widened(threshold)
        positive, negative = mine.positive(), mine.negative()
        for target, extra in ((positive, theirs.positive()), (negative, theirs.negative())):
            for index, count in extra.items():
                target[index] = target.get(index, 0.0) + sign * count
        return mine._with_buckets(
            positive,
            negative,
            count=mine.count + sign * theirs.count,
            sum=mine.sum + sign * theirs.sum,
            zero_count=mine.zero_count + sign * theirs.zero_count,
            zero_threshold=threshold,
            counter_reset_hint=combined_hint(self.counter_reset_hint, other.counter_reset_hint),
        )

    def scaled(self, factor: float) -> FloatHistogram:
        """Every count and the sum times `factor` (Prometheus' Mul); a negative factor makes
        a gauge histogram."""
        scaled = self._counts_mapped(lambda c: c * factor)
        return scaled.with_hint(GAUGE) if factor < 0 else scaled

    def divided(self, divisor: float) -> FloatHistogram:
        """Every count and the sum divided by `divisor` (Prometheus' Div): by zero (as IEEE)
        it keeps no buckets, and a negative divisor makes a gauge histogram."""
        if not divisor:
            return self._with_buckets({}, {})._counts_mapped(lambda c: _divide(c, divisor))
        divided = self._counts_mapped(lambda c: c / divisor)
        return divided.with_hint(GAUGE) if divisor < 0 else divided

    def _counts_mapped(self, change: Callable[[float], float]) -> FloatHistogram:
        return self._with(
            count=change(self.count),
            sum=change(self.sum),
            zero_count=change(self.zero_count),
            positive_buckets=tuple(change(c) for c in self.positive_buckets),
            negative_buckets=tuple(change(c) for c in self.negative_buckets),
        )

    def compacted(self) -> FloatHistogram:
        """The same histogram without its empty buckets (Prometheus' Compact(0))."""
        if 0.0 not in self.positive_buckets and 0.0 not in self.negative_buckets:
            return self
        positive, negative = self.positive(), self.negative()
        return self._with_buckets(
            {i: c for i, c in positive.items() if c}, {i: c for i, c in negative.items() if c}
        )

    def same_as(self, other: FloatHistogram) -> bool:
        """Equal in every field but the hint, empty buckets aside (Prometheus' Equals, as
        changes() uses it)."""
        a, b = self.compacted(), other.compacted()
        return (
            a.schema == b.schema
            and a.zero_threshold == b.zero_threshold
            and _same_float(a.zero_count, b.zero_count)
            and _same_float(a.count, b.count)
            and _same_float(a.sum, b.sum)
            and a.custom_values == b.custom_values
            and a.positive() == b.positive()
            and a.negative() == b.negative()
        )

    def on_bounds(self, bounds: tuple[float, ...]) -> FloatHistogram:
        """A custom-bucket histogram on fewer bounds (a subset of its own): each bucket's
        count goes to the bucket of `bounds` that holds it."""
        if bounds == self.custom_values:
            return self
        merged: dict[int, float] = {}
        for index, count in self.positive().items():
            upper = self.custom_values[index] if index < len(self.custom_values) else math.inf
            target = bisect.bisect_left(bounds, upper)
            merged[target] = merged.get(target, 0.0) + count
        spans, buckets = spans_from_map(merged)
        return self._with(custom_values=bounds, positive_spans=spans, positive_buckets=buckets)

    def reduced(self, schema: int) -> FloatHistogram:
        """The same histogram at a coarser (smaller) schema: buckets merged 2^(diff) to one."""
        if schema >= self.schema or self.uses_custom_buckets:
            return self
        shift = self.schema - schema
        sides: list[dict[int, float]] = []
        for found in (self.positive(), self.negative()):
            merged: dict[int, float] = {}
            for index, count in found.items():
                target = ((index - 1) >> shift) + 1
                merged[target] = merged.get(target, 0.0) + count
            sides.append(merged)
        return self._with_buckets(*sides, schema=schema)

    def widened(self, threshold: float) -> FloatHistogram:
        """The same histogram with a zero bucket at least `threshold` wide: buckets below it
        move into the zero bucket; a populated bucket the new threshold falls inside moves
        too, and the threshold becomes that bucket's bound."""
        if threshold <= self.zero_threshold or self.uses_custom_buckets:
            return self
        positive, negative = self.positive(), self.negative()
        while True:
            moved_pos: list[int] = []
            moved_neg: list[int] = []
            raised = threshold
            for found, moved in ((positive, moved_pos), (negative, moved_neg)):
                for index in sorted(found):
                    lower = bucket_bound(index - 1, self.schema)
                    if lower >= raised:
                        break
                    moved.append(index)
                    upper = bucket_bound(index, self.schema)
                    if upper > raised:
                        if found[index]:
                            raised = upper
                        break
            if raised == threshold:
                break
            threshold = raised
        zero = self.zero_count
        for found, moved in ((positive, moved_pos), (negative, moved_neg)):
            for index in moved:
                zero += found.pop(index)
        return self._with_buckets(positive, negative, zero_threshold=threshold, zero_count=zero)

    def detect_reset(self, previous: FloatHistogram) -> bool:
        """Whether this sample starts over from `previous` (Prometheus' DetectReset): by its
        hint if it says, else by any count going down, a finer schema, a narrower zero bucket,
        or a change between exponential and custom buckets."""
        if self.counter_reset_hint == RESET:
            return True
        if self.counter_reset_hint == NOT_RESET:
            return False
        if self.count < previous.count:
            return True
        if self.uses_custom_buckets != previous.uses_custom_buckets:
            return True
        if self.uses_custom_buckets and self.custom_values != previous.custom_values:
            # changed bounds alone are no reset: the buckets are compared on the bounds both
            # have, as they are reconciled when subtracted
            common = intersect_bounds(self.custom_values, previous.custom_values)
            now, then = self.on_bounds(common).positive(), previous.on_bounds(common).positive()
            return any(now.get(i, 0.0) < then.get(i, 0.0) for i in now.keys() | then.keys())
        if self.schema > previous.schema or self.zero_threshold < previous.zero_threshold:
            return True
        if (
            self.schema == previous.schema
            and self.zero_threshold == previous.zero_threshold
            and self.positive_spans == previous.positive_spans
            and self.negative_spans == previous.negative_spans
        ):
            # the usual case, the same layout: counts compared in place
            return (
                self.zero_count < previous.zero_count
                or any(map(float.__lt__, self.positive_buckets, previous.positive_buckets))
                or any(map(float.__lt__, self.negative_buckets, previous.negative_buckets))
            )
        before = previous.reduced(self.schema).widened(self.zero_threshold)
        if before.zero_threshold != self.zero_threshold or self.zero_count < before.zero_count:
            return True
        for now, then in (
            (self.positive(), before.positive()),
            (self.negative(), before.negative()),
        ):
            if any(count > now.get(index, 0.0) for index, count in then.items()):
                return True
        return False

    # --- storage --------------------------------------------------------------------------

    def encode(self) -> bytes:
        """A compact, self-describing binary form (decode reads it back exactly)."""
        head = _HEAD.pack(
            _FORMAT,
            self.schema,
            self.counter_reset_hint,
            len(self.positive_spans),
            len(self.negative_spans),
            len(self.positive_buckets),
            len(self.negative_buckets),
            len(self.custom_values),
            self.count,
            self.sum,
            self.zero_threshold,
            self.zero_count,
        )
        spans = [v for span in self.positive_spans + self.negative_spans for v in span]
        floats = self.positive_buckets + self.negative_buckets + self.custom_values
        return head + struct.pack(f"<{len(spans)}i{len(floats)}d", *spans, *floats)


def intersect_bounds(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, ...]:
    """The custom bucket bounds two histograms share."""
    theirs = set(b)
    return tuple(bound for bound in a if bound in theirs)


def _divide(value: float, divisor: float) -> float:
    """IEEE division by zero, as Go does it (Python raises)."""
    if value == 0 or math.isnan(value):
        return math.nan
    return math.copysign(math.inf, value) * math.copysign(1.0, divisor)


def _same_float(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def combined_hint(mine: int, theirs: int) -> int:
    """The hint of a sum or difference (Prometheus' adjustCounterReset): a gauge stays one,
    unknown wins over the rest, and reset against not_reset is unknown."""
    if mine == theirs:
        return mine
    if GAUGE in (mine, theirs):
        return GAUGE
    return UNKNOWN


_FORMAT = 1
_HEAD = struct.Struct("<BbBIIIIIdddd")
HINT_BYTE = 2  # where the counter-reset hint sits in the encoding


@lru_cache(maxsize=1024)
def _body(n_spans: int, n_floats: int) -> struct.Struct:
    """The layout of an encoding's spans and floats, compiled once per shape."""
    return struct.Struct(f"<{n_spans}i{n_floats}d")


def decode(data: bytes | memoryview) -> FloatHistogram:
    """The histogram `FloatHistogram.encode` wrote; ValueError if `data` is not one."""
    try:
        (
            version,
            schema,
            hint,
            n_pos_spans,
            n_neg_spans,
            n_pos,
            n_neg,
            n_custom,
            count,
            total,
            zero_threshold,
            zero_count,
        ) = _HEAD.unpack_from(data)
        if version != _FORMAT:
            raise ValueError(f"unknown histogram encoding {version}")
        n_spans = 2 * (n_pos_spans + n_neg_spans)
        values = _body(n_spans, n_pos + n_neg + n_custom).unpack_from(data, _HEAD.size)
    except struct.error as err:
        raise ValueError(f"truncated histogram encoding: {err}") from None
    spans = list(zip(values[0:n_spans:2], values[1:n_spans:2], strict=True))
    floats = values[n_spans:]
    return FloatHistogram(
        schema=schema,
        count=count,
        sum=total,
        zero_threshold=zero_threshold,
        zero_count=zero_count,
        positive_spans=tuple(spans[:n_pos_spans]),
        positive_buckets=tuple(floats[:n_pos]),
        negative_spans=tuple(spans[n_pos_spans:]),
        negative_buckets=tuple(floats[n_pos : n_pos + n_neg]),
        custom_values=tuple(floats[n_pos + n_neg :]),
        counter_reset_hint=hint,
    )


def _bucket_map(spans: Spans, buckets: tuple[float, ...]) -> dict[int, float]:
    return dict(zip(span_indexes(spans), buckets, strict=False))


def bucket_places(
    negative_spans: Spans, has_zero: bool, positive_spans: Spans
) -> list[tuple[int, int]]:
    """(side, index) of each bucket a layout has, in the order the query API lists them: the
    negative buckets from -Inf up (side -1), the zero bucket (0), the positive ones (1)."""
    places = [(-1, i) for i in reversed(span_indexes(negative_spans))]
    return places + [(0, 0)] * has_zero + [(1, i) for i in span_indexes(positive_spans)]


def span_indexes(spans: Spans) -> list[int]:
    """The bucket index of each count the spans lay out, in order."""
    indexes: list[int] = []
    index = 0
    for number, (offset, length) in enumerate(spans):
        index = offset if number == 0 else index + offset
        indexes += range(index, index + length)
        index += length
    return indexes


def spans_from_map(found: Mapping[int, float]) -> tuple[Spans, tuple[float, ...]]:
    """Spans and counts of buckets given by index: one span per run of consecutive indices."""
    spans: list[tuple[int, int]] = []
    counts: list[float] = []
    previous_end = 0
    for index in sorted(found):
        if spans and index == previous_end:
            offset, length = spans[-1]
            spans[-1] = (offset, length + 1)
        else:
            spans.append((index if not spans else index - previous_end, 1))
        counts.append(found[index])
        previous_end = index + 1
    return tuple(spans), tuple(counts)


@lru_cache(maxsize=1 << 16)  # bounded: custom bounds come from clients
def bucket_edges(
    schema: int, custom_values: tuple[float, ...], zero: float, side: int, index: int, clamp: bool
) -> tuple[int, float, float]:
    """(boundary rule, lower, upper) of a bucket (`FloatHistogram.buckets`), kept: histograms
    of one layout ask for the same few hundred."""
    if side < 0:
        upper = -bucket_bound(index - 1, schema, custom_values)
        if clamp and -zero < upper < 0:
            upper = -zero
        return 1, -bucket_bound(index, schema, custom_values), upper
    if side == 0:
        return 3, -zero, zero
    lower = bucket_bound(index - 1, schema, custom_values)
    if clamp and 0 < lower < zero:
        lower = zero
    rule = 3 if schema == CUSTOM_BUCKETS_SCHEMA and index == 0 else 0
    return rule, lower, bucket_bound(index, schema, custom_values)


def bucket_bound(index: int, schema: int, custom_values: tuple[float, ...] = ()) -> float:
    """The upper bound of positive bucket `index` (the lower bound of bucket index+1), as
    Prometheus computes it: exact powers of two, and the largest float for the last finite
    bucket."""
    if schema == CUSTOM_BUCKETS_SCHEMA:
        if index == len(custom_values):
            return math.inf
        if index == -1:
            return -math.inf
        return custom_values[index]
    if schema < 0:
        exponent = index << -schema
        if exponent == 1024:
            return 1.7976931348623157e308
        return _ldexp(1.0, exponent)
    fraction = _fractions(schema)[index & ((1 << schema) - 1)]
    exponent = (index >> schema) + 1
    if fraction == 0.5 and exponent == 1025:
        return 1.7976931348623157e308
    return _ldexp(fraction, exponent)


def _ldexp(fraction: float, exponent: int) -> float:
    try:
        return math.ldexp(fraction, exponent)
    except OverflowError:
        return math.inf


@cache
def _fractions(schema: int) -> tuple[float, ...]:
    """2^(j / 2^schema) / 2 for j < 2^schema, correctly rounded (the fractions in [0.5, 1)
    that place the bucket bounds of a schema between two powers of two)."""
    steps = 1 << schema
    with localcontext() as context:
        context.prec = 60
        return tuple(
            float(Decimal(2) ** (Decimal(j) / Decimal(steps)) / Decimal(2)) for j in range(steps)
        )
