"""Where each series' samples sit inside a frozen head chunk or a block, and which stretches of
compressed rows a read of some series has to decode.

Both hold their samples grouped by series in *storage order*: by metric name, then by series
id. Selectors nearly always name a metric, so a metric's series lie together and a read of them
decodes little else. Within a name, id order keeps each target's series side by side (they are
created together and scraped at the same instants), which compresses better than full label
order: on the benchmark workload a block in (name, id) order is 2% larger than in id order,
one in label order 7% larger (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from watchkeeper.model.labels import Labels, metric_name

NameOf = Callable[[int], str]

_NO_ROWS = np.empty(0, dtype=np.int64)
# series ids up to this many beyond 4 per sample are looked up in tables indexed by id
DENSE_IDS = 1 << 20


def name_of(labels: Mapping[int, Labels]) -> NameOf:
    """The metric name of series by id, from their labels."""
    return lambda sid: metric_name(labels[sid])


def storage_order(ids: npt.NDArray[np.int64], name_of: NameOf | None) -> npt.NDArray[np.int64]:
    """The distinct series `ids` (ascending) in storage order; without `name_of`, id order."""
    if name_of is None or len(ids) < 2:
        return ids
    names = np.array([name_of(sid) for sid in ids.tolist()], dtype=object)
    order = sorted(range(len(ids)), key=names.__getitem__)  # stable: ties keep id order
    return ids[np.array(order, dtype=np.int64)]


def storage_sort(series: npt.NDArray[np.int64], name_of: NameOf | None) -> npt.NDArray[np.intp]:
    """The stable order that groups samples (given by their series ids) by series in storage
    order, keeping the samples of each series in the order given."""
    top = int(series.max()) + 1 if len(series) else 0
    if top > 4 * len(series) + DENSE_IDS:
        ids = np.unique(series)
        rank = np.empty(len(ids), dtype=np.int64)
        rank[np.searchsorted(ids, storage_order(ids, name_of))] = np.arange(len(ids))
        keys = rank[np.searchsorted(ids, series)]
    else:
        # Ids are small and dense: tables indexed by id find the distinct ones and their
        # ranks in linear time, where np.unique sorts. A head chunk of 512 Ki scraped samples
        # of 100,000 series: 258 -> 45 ms (most of it now the names' order).
        present = np.zeros(top, dtype=bool)
        present[series] = True
        ids = np.flatnonzero(present)
        table = np.empty(top, dtype=np.int64)
        table[storage_order(ids, name_of)] = np.arange(len(ids))
        keys = table[series]
    order: npt.NDArray[np.intp] = np.argsort(keys, kind="stable")
    return order


@dataclass(frozen=True)
class SeriesIndex:
    """The series of a chunk or block in storage order, with the row range of each."""

    ids: npt.NDArray[np.int64]  # storage order
    starts: npt.NDArray[np.int64]  # first row of each series; one more entry: the row count
    by_id: npt.NDArray[np.int64]  # positions in `ids` that sort them ascending
    # `ids` ascending (ids[by_id]), kept because every lookup searches it: gathering it per
    # lookup cost a small read about 15 µs per chunk or block
    sorted_ids: npt.NDArray[np.int64]

    @staticmethod
    def of(ids: npt.NDArray[np.int64], counts: npt.NDArray[np.int64]) -> SeriesIndex:
        starts = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        by_id = np.argsort(ids, kind="stable").astype(np.int64)
        return SeriesIndex(ids, starts, by_id, ids[by_id])

    @property
    def rows(self) -> int:
        return int(self.starts[-1])

    @property
    def counts(self) -> npt.NDArray[np.int64]:
        return np.diff(self.starts)

    def positions(self, wanted: npt.NDArray[np.int64] | None) -> npt.NDArray[np.int64]:
        """Positions (ascending, so in storage order) of the `wanted` series (sorted ids) that
        are here; every series when `wanted` is None."""
        if wanted is None:
            return np.arange(len(self.ids), dtype=np.int64)
        return np.sort(self._find(wanted)[1])

    def row_counts(self, wanted: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The rows of each of the `wanted` series (sorted ids; 0 for those not here)."""
        counts = np.zeros(len(wanted), dtype=np.int64)
        hit, found = self._find(wanted)
        counts[hit] = self.starts[found + 1] - self.starts[found]
        return counts

    def _find(
        self, wanted: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
        """Which of the `wanted` series (sorted ids) are here, and their positions."""
        if len(self.ids) == 0 or len(wanted) == 0:
            return np.zeros(len(wanted), dtype=bool), _NO_ROWS
        sorted_ids = self.sorted_ids
        at = np.searchsorted(sorted_ids, wanted)
        np.minimum(at, len(sorted_ids) - 1, out=at)
        hit = sorted_ids[at] == wanted
        return hit, self.by_id[at[hit]]

    def ranges_of(
        self, positions: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The first row and the row count of each series at `positions`."""
        return self.starts[positions], self.starts[positions + 1] - self.starts[positions]


def gather_rows(
    starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """The row numbers of the ranges [start, start + length), concatenated."""
    total = int(lengths.sum())
    if total == 0:
        return _NO_ROWS
    offsets = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    rows = np.repeat(starts - offsets, lengths)
    rows += np.arange(total, dtype=np.int64)
    return rows


@dataclass(frozen=True)
class UnitPlan:
    """Which compressed units (segments, row groups) to decode for some rows, and where each of
    those rows lands in the units' decoded rows laid end to end."""

    units: list[int]
    within: npt.NDArray[np.int64]


def plan_units(
    unit_starts: npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
) -> UnitPlan:
    """The units to decode for the row ranges [start, start + length) (ascending, disjoint);
    `unit_starts` holds each unit's first row and, last, the row count."""
    used = lengths > 0
    starts, lengths = starts[used], lengths[used]
    if len(starts) == 0:
        return UnitPlan([], _NO_ROWS)
    first = np.searchsorted(unit_starts, starts, side="right") - 1
    last = np.searchsorted(unit_starts, starts + lengths - 1, side="right") - 1
    spanned = gather_rows(first, last - first + 1)  # ascending: the ranges are
    units = spanned[np.r_[True, spanned[1:] != spanned[:-1]]]
    sizes = unit_starts[units + 1] - unit_starts[units]
    decoded_start = np.zeros(len(units), dtype=np.int64)
    np.cumsum(sizes[:-1], out=decoded_start[1:])
    # every unit a range touches is decoded, so its rows stay contiguous once decoded
    moved = decoded_start[np.searchsorted(units, first)] + (starts - unit_starts[first])
    return UnitPlan(units.tolist(), gather_rows(moved, lengths))
