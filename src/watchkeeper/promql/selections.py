"""The aggregations that choose or count series rather than reduce their values: topk,
bottomk and limitk (each group's k series), limit_ratio (the series whose label hash falls in a
share of the hash range) and count_values (series counted by value)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import xxhash

from watchkeeper.model import Labels
from watchkeeper.model.gofloat import format_f
from watchkeeper.promql.errors import QueryError
from watchkeeper.promql.grouping import group_of, grouping, series_groups
from watchkeeper.promql.positions import call_argument
from watchkeeper.promql.values import Floats, InstantSteps, Ints
from watchkeeper.promql.vectors import merge_same_labels

if TYPE_CHECKING:
    from watchkeeper.promql.evaluator import Evaluator


def select_k(op: str, vector: InstantSteps, modifier: Any, k_values: Floats) -> InstantSteps:
    """topk/bottomk/limitk: the series themselves (labels untouched), present at a step when
    among the group's k chosen there. NaN is chosen last, as in Prometheus."""
    steps = vector.values.shape[1]
    if np.isnan(k_values).any():
        raise QueryError("Parameter value is NaN")
    if (np.abs(k_values) >= 2**63).any():
        raise QueryError(f"Scalar value {k_values[0]} overflows int64")
    k = k_values.astype(np.int64)
    group_labels, gid = series_groups(vector, modifier)
    if steps == 1 and op != "limitk":
        return _select_k_instant(op, vector, gid, int(k[0]))
    n = len(vector.labels)
    chosen = np.zeros((n, steps), dtype=bool)
    rank = np.zeros((n, steps), dtype=np.int64)
    for g in range(len(group_labels)):
        rows = np.flatnonzero(gid == g)
        present = vector.present[rows]
        values = vector.values[rows]
        if op == "limitk":
            position = np.cumsum(present, axis=0) - 1
        else:
            nan = np.isnan(values)
            key = np.where(nan, 0.0, -values if op == "topk" else values)
            category = np.where(present, np.where(nan, 1, 0), 2)
            tiebreak = np.broadcast_to(np.arange(len(rows))[:, None], present.shape)
            order = np.lexsort((tiebreak, key, category), axis=0)
            position = np.empty_like(order)
            np.put_along_axis(position, order, np.arange(len(rows))[:, None], axis=0)
        chosen[rows] = present & (position < k[None, :])
        rank[rows] = position
    keep = chosen.any(axis=1)
    idx = np.flatnonzero(keep)
    if steps == 1 and op != "limitk":
        # an instant result lists each group's choice best first, groups in order of appearance
        idx = idx[np.lexsort((rank[idx, 0], gid[idx]))]
    return InstantSteps([vector.labels[i] for i in idx], vector.values[idx], chosen[idx])


def _select_k_instant(op: str, vector: InstantSteps, gid: Ints, k: int) -> InstantSteps:
    """topk/bottomk at one step: each group's k chosen, best first, groups in order of
    appearance; one sort of all present series by (group, NaN last, value, position)."""
    rows = np.flatnonzero(vector.present[:, 0])
    values = vector.values[rows, 0]
    nan = np.isnan(values)
    key = np.where(nan, 0.0, -values if op == "topk" else values)
    groups = gid[rows]
    order = np.lexsort((rows, key, nan, groups))
    by_group = groups[order]
    starts = np.flatnonzero(np.r_[True, by_group[1:] != by_group[:-1]])
    place = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    idx = rows[order[place < k]]
    return InstantSteps(
        [vector.labels[i] for i in idx.tolist()],
        vector.values[idx],
        np.ones((len(idx), 1), dtype=bool),
    )


def label_hash(labels: Labels) -> int:
    """Prometheus' labels.Hash (its default label encoding since 3.x): XXH64 over each name and
    value, each preceded by its length as a uvarint."""
    data = bytearray()
    for name, value in labels:
        for text in (name.encode(), value.encode()):
            size = len(text)
            while size >= 0x80:
                data.append((size & 0x7F) | 0x80)
                size >>= 7
            data.append(size)
            data += text
    return int(xxhash.xxh64_intdigest(bytes(data)))


def limit_ratio(ev: Evaluator, vector: InstantSteps, ratios: Floats) -> InstantSteps:
    """limit_ratio(r, v): the series whose label hash falls below r of the hash range (r > 0),
    or above 1 + r (r < 0), so that r and -(1 - r) pick complementary series, the same ones at
    every step."""
    if np.isnan(ratios).any():
        raise QueryError("Ratio value is NaN")
    if (np.abs(ratios) > 1).any():
        bad = float(ratios[np.abs(ratios) > 1][0])
        ev.ctx.annotations.warn(
            f"PromQL warning: ratio value should be between -1 and 1, got {format_f(bad)}, "
            f"capping to {format_f(float(np.clip(bad, -1, 1)))} "
            f"({call_argument(ev.ctx.query, 'limit_ratio', 0, 0)})"
        )
    ratio = np.clip(ratios, -1.0, 1.0)[None, :]
    offsets = np.array(
        [label_hash(ls) / float(2**64 - 1) for ls in vector.labels], dtype=np.float64
    )[:, None]
    keep = ((ratio >= 0) & (offsets < ratio)) | ((ratio < 0) & (offsets >= 1.0 + ratio))
    chosen = vector.present & keep & (ratio != 0)
    rows = np.flatnonzero(chosen.any(axis=1))
    return InstantSteps([vector.labels[i] for i in rows], vector.values[rows], chosen[rows])


def _count_texts(
    vector: InstantSteps,
    rows: Ints,
    cols: Ints,
    label: str,
    names: set[str],
    by: bool,
    steps: int,
    histogram_texts: dict[tuple[int, int], str],
) -> InstantSteps:
    """count_values over floats and native histograms, sample by sample."""
    index: dict[Labels, int] = {}
    cells: list[tuple[int, int]] = []
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        text = histogram_texts.get((i, j)) or format_f(float(vector.values[i, j]))
        labelled = {**dict(vector.labels[i]), label: text}
        group = group_of(tuple(sorted(labelled.items())), names, by)
        cells.append((index.setdefault(group, len(index)), j))
    counts = np.zeros((len(index), steps))
    for g, j in cells:
        counts[g, j] += 1.0
    return merge_same_labels(list(index), counts, counts > 0)


def count_values(
    vector: InstantSteps,
    modifier: Any,
    label: str,
    steps: int,
    histogram_texts: dict[tuple[int, int], str] | None = None,
) -> InstantSteps:
    """count_values: each sample's value becomes a label (as Go formats it, so -0 and 0 are
    different values) before grouping, as in Prometheus: `by` may group on it, `without` may
    drop it."""
    by, names = grouping(modifier)
    if by:
        names = names | {label}  # `by` always keeps the value label
    rows, cols = np.nonzero(vector.present)
    if len(rows) == 0:
        return InstantSteps.empty(steps)
    if histogram_texts:
        return _count_texts(vector, rows, cols, label, names, by, steps, histogram_texts)
    values = vector.values[rows, cols]
    bits = np.where(np.isnan(values), np.nan, values).view(np.uint64)
    uniq, inverse = np.unique(bits, return_inverse=True)
    pairs, pair_index = np.unique(rows * len(uniq) + inverse.ravel(), return_inverse=True)
    texts = [format_f(float(v)) for v in uniq.view(np.float64).tolist()]
    index: dict[Labels, int] = {}
    pair_group = np.empty(len(pairs), dtype=np.int64)
    for p, key in enumerate(pairs.tolist()):
        labelled = {**dict(vector.labels[key // len(uniq)]), label: texts[key % len(uniq)]}
        group = group_of(tuple(sorted(labelled.items())), names, by)
        pair_group[p] = index.setdefault(group, len(index))
    counts = np.zeros((len(index), steps))
    np.add.at(counts, (pair_group[pair_index.ravel()], cols), 1.0)
    return merge_same_labels(list(index), counts, counts > 0)
