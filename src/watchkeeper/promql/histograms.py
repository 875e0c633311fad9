"""histogram_quantile and histogram_fraction over classic histograms (`_bucket` series with an
`le` label), with Prometheus' fix-ups: buckets with equal bounds merged, tiny float differences
ignored, decreasing counts forced monotonic (reported as an info)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from watchkeeper.model import METRIC_NAME, Labels, metric_name
from watchkeeper.model.gofloat import format_f
from watchkeeper.promql.values import Bools, Floats, InstantSteps
from watchkeeper.promql.vectors import drop_name, merge_same_labels

if TYPE_CHECKING:
    from watchkeeper.promql.evaluator import Evaluator

SMALL_DELTA_TOLERANCE = 1e-12
_MIN_NORMAL = 2.2250738585072014e-308
MONOTONICITY_URL = (
    "https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile"
)


def _almost_equal(a: Floats, b: Floats, epsilon: float) -> Bools:
    with np.errstate(all="ignore"):
        abs_sum = np.abs(a) + np.abs(b)
        diff = np.abs(a - b)
        tiny = (a == 0) | (b == 0) | (abs_sum < _MIN_NORMAL)
        relative = diff / np.minimum(abs_sum, np.finfo(np.float64).max) < epsilon
        result = np.where(tiny, diff < epsilon * _MIN_NORMAL, relative)
    equal: Bools = (a == b) | (np.isnan(a) & np.isnan(b)) | result
    return equal


def _parse_le(value: str) -> float | None:
    try:
        return float(value.strip())
    except ValueError:
        return None


def _bucket_groups(
    ev: Evaluator, vector: InstantSteps, node_position: str
) -> dict[Labels, tuple[list[float], list[int], str]]:
    """Series grouped by their labels without `le` and the metric name: (bounds, rows, name)."""
    groups: dict[Labels, tuple[list[float], list[int], str]] = {}
    # each distinct `le` text is parsed once: a thousand histograms share a dozen of them
    parsed: dict[str, float | None] = {}
    for i in np.flatnonzero(vector.present.any(axis=1)).tolist():
        labels = vector.labels[i]
        values = dict(labels)
        text = values.pop("le", None)
        bound = None
        if text is not None:
            bound = parsed[text] if text in parsed else parsed.setdefault(text, _parse_le(text))
        if bound is None or math.isnan(bound):
            ev.ctx.annotations.warn(
                'PromQL warning: bucket label "le" is missing or has a malformed value of '
                f'"{text or ""}" for metric name "{metric_name(labels)}" ({node_position})'
            )
            continue
        # grouped with the name, which is dropped afterwards: two histograms that differ only
        # by name make a vector with one label set twice, an error as in Prometheus. The dict
        # keeps the pairs' (sorted) order.
        key = tuple(values.items())
        group = groups.get(key)
        if group is None:
            group = groups[key] = ([], [], values.get(METRIC_NAME, ""))
        group[0].append(bound)
        group[1].append(i)
    return groups


def _prepared(bounds: list[float], counts: Floats) -> tuple[Floats, Floats, Bools]:
    """Sorted, coalesced buckets made monotonic, and per column whether that forced a fix."""
    order = np.argsort(np.array(bounds), kind="stable")
    ub = np.array(bounds)[order]
    c = counts[order]
    unique, starts = np.unique(ub, return_index=True)
    c = np.add.reduceat(c, starts, axis=0)
    forced = np.zeros(c.shape[1], dtype=bool)
    prev = c[0].copy()
    for i in range(1, len(unique)):
        curr = c[i]
        same = curr == prev
        close = ~same & _almost_equal(prev, curr, SMALL_DELTA_TOLERANCE)
        lower = ~same & ~close & (curr < prev)
        c[i] = np.where(close | lower, prev, curr)
        forced |= lower
        prev = np.where(same | close | lower, prev, curr)
    return unique, c, forced


def bucket_quantile(q: Floats, bounds: list[float], counts: Floats) -> tuple[Floats, Bools]:
    """Prometheus' BucketQuantile for every column of `counts` (buckets x steps)."""
    steps = counts.shape[1]
    nan = np.full(steps, np.nan)
    if max(bounds) != math.inf:
        return _q_edges(q, nan), np.zeros(steps, dtype=bool)
    ub, c, forced = _prepared(bounds, counts)
    k = len(ub)
    if k < 2:
        return _q_edges(q, nan), forced
    observations = c[-1]
    with np.errstate(all="ignore"):
        rank = q * observations
        hit = c[:-1] >= rank[None, :]
        b = np.where(hit.any(axis=0), np.argmax(hit, axis=0), k - 1)
        cols = np.arange(steps)
        prev_count = np.where(b > 0, c[np.maximum(b - 1, 0), cols], 0.0)
        start = np.where(b > 0, ub[np.maximum(b - 1, 0)], 0.0)
        end = ub[np.minimum(b, k - 1)]
        count = c[np.minimum(b, k - 1), cols] - prev_count
        result = start + (end - start) * ((rank - prev_count) / count)
        result = np.where((b == 0) & (ub[0] <= 0), ub[0], result)
        result = np.where(b == k - 1, ub[k - 2], result)
        result = np.where(observations == 0, np.nan, result)
    return _q_edges(q, result), forced


def _q_edges(q: Floats, result: Floats) -> Floats:
    return np.where(np.isnan(q), np.nan, np.where(q < 0, -np.inf, np.where(q > 1, np.inf, result)))


def quantile(
    ev: Evaluator, q: Floats, vector: InstantSteps, vector_arg: int = 1, q_arg: int = 0
) -> InstantSteps:
    """histogram_quantile; the argument indexes place the annotations."""
    position = ev.ctx.argument_position(vector_arg)
    bad_q = q[np.isnan(q) | (q < 0) | (q > 1)]
    if len(bad_q):
        ev.ctx.annotations.warn(
            "PromQL warning: quantile value should be between 0 and 1, got "
            f"{format_f(float(bad_q[0]))} ({ev.ctx.argument_position(q_arg)})"
        )
    return _per_group(
        ev, vector, position, lambda bounds, c, cols: bucket_quantile(q[cols], bounds, c)
    )


def bucket_fraction(lower: Floats, upper: Floats, bounds: list[float], counts: Floats) -> Floats:
    """Prometheus' BucketFraction for every column: the share of observations in
    [lower, upper], interpolating linearly inside buckets."""
    steps = counts.shape[1]
    if max(bounds) != math.inf:
        return np.full(steps, np.nan)
    ub, c, _ = _prepared(bounds, counts)
    total = c[-1]
    out = np.full(steps, np.nan)
    for j in range(steps):
        lo, hi, count = float(lower[j]), float(upper[j]), float(total[j])
        if count == 0 or math.isnan(lo) or math.isnan(hi):
            continue
        if lo >= hi:
            out[j] = 0.0
            continue
        out[j] = _fraction_one(lo, hi, ub, c[:, j], count)
    return out


def _fraction_one(lower: float, upper: float, ub: Floats, c: Floats, count: float) -> float:
    rank = lower_rank = upper_rank = 0.0
    lower_set = upper_set = False
    lower_bound = -math.inf if ub[0] <= 0 else 0.0
    for i in range(len(ub)):
        if i > 0:
            lower_bound = float(ub[i - 1])
        upper_bound = float(ub[i])
        bucket = float(c[i])

        def interpolate(
            v: float,
            lb: float = lower_bound,
            ubound: float = upper_bound,
            bucket: float = bucket,
            rank: float = rank,
        ) -> float:
            if lb == -math.inf:
                return bucket
            return rank + (bucket - rank) * (v - lb) / (ubound - lb)

        if not lower_set and lower_bound >= lower:
            lower_rank, lower_set = rank, True
        if not upper_set and lower_bound >= upper:
            upper_rank, upper_set = rank, True
        if lower_set and upper_set:
            break
        if not lower_set and lower_bound < lower < upper_bound:
            lower_rank, lower_set = interpolate(lower), True
        if not upper_set and lower_bound < upper < upper_bound:
            upper_rank, upper_set = interpolate(upper), True
        if lower_set and upper_set:
            break
        rank = bucket
    if not lower_set or lower_rank > count:
        lower_rank = count
    if not upper_set or upper_rank > count:
        upper_rank = count
    return (upper_rank - lower_rank) / count


def fraction(ev: Evaluator, lower: Floats, upper: Floats, vector: InstantSteps) -> InstantSteps:
    position = ev.ctx.argument_position(2)
    return _per_group(
        ev,
        vector,
        position,
        lambda bounds, c, cols: (
            bucket_fraction(lower[cols], upper[cols], bounds, c),
            np.zeros(0, dtype=bool),
        ),
    )


def _per_group(ev: Evaluator, vector: InstantSteps, position: str, compute: Any) -> InstantSteps:
    """Runs `compute(bounds, counts, cols)` for each group's buckets. Groups (and steps) with
    the same bucket bounds are computed together in one call, so a thousand histograms with the
    usual dozen buckets cost about as much as one."""
    steps = vector.values.shape[1]
    groups = _bucket_groups(ev, vector, position)
    results = np.full((len(groups), steps), np.nan)
    present = np.zeros((len(groups), steps), dtype=bool)
    # bucket layout -> [(group index, rows in bound order, columns)]
    jobs: dict[tuple[float, ...], list[tuple[int, list[int], Any]]] = {}
    names: list[str] = []
    # the usual case, every series at every step (always so for an instant query): each group
    # has one layout for all steps, with no per-group look at which buckets are there
    everywhere = bool(vector.present.all())
    all_steps = np.arange(steps)
    for g, (bounds, rows, name) in enumerate(groups.values()):
        names.append(name)
        if everywhere:
            present[g] = True
            patterns, columns = [None], [all_steps]
        else:
            p = vector.present[rows]
            present[g] = p.any(axis=0)
            if (p.all(axis=0) == present[g]).all():
                # every bucket there whenever any is: one layout for all steps
                patterns, columns = [None], [np.flatnonzero(present[g])]
            else:
                # buckets missing at some steps: each pattern of present buckets separately
                unique, inverse = np.unique(p.T, axis=0, return_inverse=True)
                patterns, columns = [], []
                for index, pattern in enumerate(unique):
                    if pattern.any():
                        patterns.append(pattern)
                        columns.append(np.flatnonzero(inverse.ravel() == index))
        for pattern, cols in zip(patterns, columns, strict=True):
            if len(cols) == 0:
                continue
            if pattern is None:
                used = sorted(zip(bounds, rows, strict=True))
            else:
                used = sorted(
                    (b, r) for b, r, keep in zip(bounds, rows, pattern, strict=True) if keep
                )
            layout = tuple(b for b, _ in used)
            jobs.setdefault(layout, []).append((g, [r for _, r in used], cols))
    for layout, batch in jobs.items():
        if everywhere:
            # buckets x (groups x steps) in one gather
            rows_of = np.array([rows for _, rows, _ in batch])
            counts = vector.values[rows_of].transpose(1, 0, 2).reshape(len(layout), -1)
            all_cols = np.tile(all_steps, len(batch))
        else:
            counts = np.hstack([vector.values[rows][:, cols] for _, rows, cols in batch])
            all_cols = np.concatenate([cols for _, _, cols in batch])
        part, forced = compute(list(layout), counts, all_cols)
        offset = 0
        for g, _, cols in batch:
            results[g, cols] = part[offset : offset + len(cols)]
            if len(forced) and forced[offset : offset + len(cols)].any():
                ev.ctx.annotations.info(
                    "PromQL info: input to histogram_quantile needed to be fixed for "
                    f'monotonicity (see {MONOTONICITY_URL}) for metric name "{names[g]}" '
                    f"({position})"
                )
            offset += len(cols)
    return merge_same_labels([drop_name(key) for key in groups], results, present)
