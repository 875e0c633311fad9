"""Head chunks to sorted, deduplicated sample runs (for reads and block writes), the parts of a
read laid out as columns in label order, and lookups of exact samples in head chunks (for
retried writes)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from watchkeeper.model import Labels
from watchkeeper.store.blocks import SortedPart
from watchkeeper.store.headchunks import Arrays, FrozenChunk, HeadChunk, concatenated
from watchkeeper.store.ordering import INT64_MIN
from watchkeeper.store.read_cache import Decoded
from watchkeeper.store.series_index import NameOf, gather_rows, storage_order
from watchkeeper.store.types import SeriesColumns

PART_SAMPLES = 128 * 1024
_NO_IDS = np.empty(0, dtype=np.int64)


def sorted_parts(
    chunks: list[HeadChunk | FrozenChunk], end: int, name_of: NameOf | None = None
) -> Iterator[SortedPart]:
    """The head's samples before `end` in storage order (series_index.py) by the metric names
    `name_of` gives, time-sorted and deduplicated per series, in parts of about PART_SAMPLES
    samples holding whole series: a block is written part by part, so compaction never holds a
    second copy of the whole head."""
    if not chunks:
        return
    # Samples per series, roughly (samples after `end` included): enough to cut the series
    # into parts of about PART_SAMPLES without decoding frozen chunks for it.
    frozen_ids = [c.ids for c in chunks if isinstance(c, FrozenChunk)]
    frozen_counts = [c.counts for c in chunks if isinstance(c, FrozenChunk)]
    raw_ids, raw_counts = np.unique(
        np.concatenate([c.series for c in chunks if isinstance(c, HeadChunk)] + [_NO_IDS]),
        return_counts=True,
    )
    every_id = np.concatenate([*frozen_ids, raw_ids])
    ids, where = np.unique(every_id, return_inverse=True)
    counts = np.bincount(where, weights=np.concatenate([*frozen_counts, raw_counts]))
    wanted_table = np.zeros(int(ids[-1]) + 1, dtype=bool)

    def before_end(wanted: npt.NDArray[np.int64]) -> Iterator[Arrays]:
        wanted_table[wanted] = True
        for chunk in chunks:
            c_series, c_ts, c_values = select(chunk, wanted, wanted_table)
            mask = c_ts < end
            yield c_series[mask], c_ts[mask], c_values[mask]
        wanted_table[wanted] = False

    yield from parts_in_storage_order(ids, counts, name_of, before_end)


def parts_in_storage_order(
    ids: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64] | npt.NDArray[np.float64],
    name_of: NameOf | None,
    samples_of: Callable[[npt.NDArray[np.int64]], Iterable[Arrays]],
) -> Iterator[SortedPart]:
    """The series `ids` (ascending, about `counts` samples each) as parts for write_block:
    whole series in storage order, about PART_SAMPLES samples a part, each series time-sorted
    with the first of equal times kept. `samples_of(wanted)` gives the samples of the series
    `wanted` (ascending) as (series, times, values) pieces, the one to keep first."""
    ordered = storage_order(ids, name_of)
    group = np.cumsum(counts[np.searchsorted(ids, ordered)]) // PART_SAMPLES
    for g in np.unique(group).tolist():
        members = ordered[group == g]  # storage order
        wanted = np.sort(members)
        # samples carry their series' place in `members`, so one stable sort by (place, time)
        # gives storage order
        place = np.empty(len(members), dtype=np.int64)
        place[np.searchsorted(wanted, members)] = np.arange(len(members), dtype=np.int64)
        parts_s, parts_t, parts_v = [], [], []
        for part_s, part_t, part_v in samples_of(wanted):
            if len(part_s):
                parts_s.append(place[np.searchsorted(wanted, part_s)])
                parts_t.append(part_t)
                parts_v.append(part_v)
        if parts_s:
            places, ts, vals = merge_parts(parts_s, parts_t, parts_v)
            yield members[places], ts, vals


def select(
    chunk: HeadChunk | FrozenChunk,
    wanted: npt.NDArray[np.int64],
    wanted_table: npt.NDArray[np.bool_],
    cache: Decoded | None = None,
) -> Arrays:
    """A chunk's samples of the series `wanted` (ascending; `wanted_table[sid]` is True for
    them, and as long as the largest), decoding only what a frozen chunk needs for them (with
    the decoded segments of `cache`)."""
    if isinstance(chunk, FrozenChunk):
        return chunk.arrays(wanted, cache)
    if chunk.by_series is not None:
        rows = chunk.by_series.rows(wanted)
        return chunk.series[rows], chunk.timestamps[rows], chunk.values[rows]
    series = chunk.series
    try:
        # one gather and one scan over the rows where the table covers every id in them (a
        # raw segment being filled has no index yet: it is read this way every time)
        rows = np.flatnonzero(wanted_table[series])
    except IndexError:
        in_range = series < len(wanted_table)
        mask = in_range.copy()
        mask[in_range] = wanted_table[series[in_range]]
        rows = np.flatnonzero(mask)
    return series[rows], chunk.timestamps[rows], chunk.values[rows]


def head_parts(
    chunks: Sequence[HeadChunk | FrozenChunk],
    sids: npt.NDArray[np.int64],
    start: int,
    end: int,
    cache: Decoded | None = None,
    id_bound: int = 0,
) -> Iterator[Arrays]:
    """The samples of the series `sids` (sorted) in [start, end], chunk by chunk, frozen ones
    decoded through `cache`; `id_bound` is above every series id in `chunks`, if known."""
    # a lookup table answers "is this sample's series wanted" in one pass (np.isin sorts)
    wanted_table = np.zeros(max(int(sids[-1]) + 1, id_bound), dtype=bool)
    wanted_table[sids] = True
    for chunk in chunks:
        if chunk.max_time < start or chunk.min_time > end:
            continue
        c_series, c_ts, c_values = select(chunk, sids, wanted_table, cache)
        mask = (c_ts >= start) & (c_ts <= end)
        yield c_series[mask], c_ts[mask], c_values[mask]


def merge_parts(
    parts_s: list[npt.NDArray[np.int64]],
    parts_t: list[npt.NDArray[np.int64]],
    parts_v: list[npt.NDArray[np.float64]],
) -> Arrays:
    """The parts joined (the lists are emptied), sorted by (series, time) keeping arrival order
    among equals, with only the first of each (series, time). One array at a time: each step
    lets go of what it replaces, so a long read holds its samples about once, not three times."""
    if len(parts_s) == 1:
        one_s, one_t, one_v = parts_s[0], parts_t[0], parts_v[0]
        if len(one_t) < 2 or (
            bool((one_s == one_s[0]).all()) and bool((one_t[1:] > one_t[:-1]).all())
        ):
            # one series in time order (a rule's selector over the head): nothing to sort
            parts_s.clear()
            parts_t.clear()
            parts_v.clear()
            return one_s, one_t, one_v
    sids = np.concatenate(parts_s)
    parts_s.clear()
    ts = np.concatenate(parts_t)
    parts_t.clear()
    vals = np.concatenate(parts_v)
    parts_v.clear()
    if len(ts) == 0:
        return sids, ts, vals
    order = _sort_order(sids, ts)
    sids = sids[order]
    ts = ts[order]
    vals = vals[order]
    del order
    keep = np.empty(len(ts), dtype=bool)
    keep[0] = True
    np.not_equal(sids[1:], sids[:-1], out=keep[1:])
    keep[1:] |= ts[1:] != ts[:-1]
    if keep.all():
        return sids, ts, vals
    return sids[keep], ts[keep], vals[keep]


def _sort_order(sids: npt.NDArray[np.int64], ts: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """The stable order that sorts samples by (series, time)."""
    low, span = int(ts.min()), int(ts.max()) - int(ts.min()) + 1
    if int(sids.max()) < (2**62) // span and int(sids.min()) >= 0:
        # one combined key: a stable sort of it runs on the time-ordered runs of each chunk,
        # about four times faster than sorting by two keys
        order: npt.NDArray[np.intp] = np.argsort(sids * span + (ts - low), kind="stable")
        return order
    lexical: npt.NDArray[np.intp] = np.lexsort((ts, sids))
    return lexical


def already_stored(
    chunks: Sequence[HeadChunk | FrozenChunk],
    sids: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    bits: npt.NDArray[np.int64],
) -> npt.NDArray[np.bool_]:
    """Which of the samples (series, timestamp, value bits) the chunks hold exactly."""
    if not chunks:
        return np.zeros(len(sids), dtype=bool)
    head_s, head_t, head_v = concatenated(chunks)
    near = np.isin(head_t, ts) & np.isin(head_s, sids)
    stored = set(
        zip(
            head_s[near].tolist(),
            head_t[near].tolist(),
            head_v[near].view(np.int64).tolist(),
            strict=True,
        )
    )
    probe = zip(sids.tolist(), ts.tolist(), bits.tolist(), strict=True)
    return np.fromiter((row in stored for row in probe), dtype=bool, count=len(sids))


def columns_in_label_order(
    parts: list[Arrays],
    sids: npt.NDArray[np.int64],
    labels: Mapping[int, Labels],
    by_labels: list[int],
) -> SeriesColumns:
    """The samples of `parts` (the list is emptied) as columns, series in label order, without
    sorting samples: each part is a block's read or the merged head, holding each series in one
    time-sorted run, and each part is newer than the one before. Those hold by the ordering
    rules (nothing is stored at or before the newest block's end); where they do not, as when
    a block was copied in twice by hand, the samples are sorted instead.
    `sids` (ascending) holds every series in the parts; `by_labels`, their positions in label
    order."""
    if len(parts) == 1 and len(sids) == 1:
        # one series from one part (a rule's selector, most often): already a time-sorted run
        _, part_t, part_v = parts.pop()
        if len(part_t) == 0:
            return SeriesColumns.empty()
        if len(part_t) == 1 or bool((part_t[1:] > part_t[:-1]).all()):
            bounds = np.array([0, len(part_t)], dtype=np.int64)
            return SeriesColumns([labels[int(sids[0])]], bounds, part_t, part_v)
        parts.append((sids[np.zeros(len(part_t), dtype=np.intp)], part_t, part_v))
    rank = np.empty(len(sids), dtype=np.int64)
    rank[by_labels] = np.arange(len(sids), dtype=np.int64)
    runs = []
    newest = INT64_MIN
    for part_s, part_t, _ in parts:
        starts = np.flatnonzero(np.r_[True, part_s[1:] != part_s[:-1]])
        lengths = np.diff(np.r_[starts, len(part_s)])
        ranks = rank[np.searchsorted(sids, part_s[starts])]
        ascending = part_t[1:] > part_t[:-1]
        ascending[starts[1:] - 1] = True
        in_order = int(part_t.min()) > newest and bool(ascending.all())
        if not in_order or (len(ranks) > 1 and len(np.unique(ranks)) != len(ranks)):
            return _sorted_columns(parts, labels)
        newest = int(part_t.max())
        runs.append((ranks, lengths))
    totals = np.zeros(len(sids), dtype=np.int64)
    for ranks, lengths in runs:
        totals[ranks] += lengths
    cursor = np.zeros(len(sids), dtype=np.int64)
    np.cumsum(totals[:-1], out=cursor[1:])
    size = int(totals.sum())
    timestamps = np.empty(size, dtype=np.int64)
    values = np.empty(size, dtype=np.float64)
    for ranks, lengths in runs:
        _, part_t, part_v = parts.pop(0)  # let go of each part once it is placed
        rows = gather_rows(cursor[ranks], lengths)
        timestamps[rows] = part_t
        values[rows] = part_v
        cursor[ranks] += lengths
    present = np.flatnonzero(totals)
    bounds = np.zeros(len(present) + 1, dtype=np.int64)
    np.cumsum(totals[present], out=bounds[1:])
    ordered = sids[by_labels][present].tolist()
    return SeriesColumns([labels[s] for s in ordered], bounds, timestamps, values)


def _sorted_columns(parts: list[Arrays], labels: Mapping[int, Labels]) -> SeriesColumns:
    parts_s, parts_t, parts_v = [], [], []
    while parts:
        part_s, part_t, part_v = parts.pop(0)
        parts_s.append(part_s)
        parts_t.append(part_t)
        parts_v.append(part_v)
    s_all, t_all, v_all = merge_parts(parts_s, parts_t, parts_v)
    return SeriesColumns.in_label_order(s_all, t_all, v_all, labels)
