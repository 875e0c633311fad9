"""Head chunks to sorted, deduplicated sample runs (for reads and block writes), and lookups of
exact samples in them (for retried writes)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

from watchkeeper.store.blocks import SortedPart
from watchkeeper.store.headchunks import Arrays, FrozenChunk, HeadChunk, concatenated

PART_SAMPLES = 128 * 1024
_NO_IDS = np.empty(0, dtype=np.int64)


def sorted_parts(chunks: list[HeadChunk | FrozenChunk], end: int) -> Iterator[SortedPart]:
    """The head's samples before `end`, sorted by (series, time) and deduplicated, in parts of
    about PART_SAMPLES samples covering consecutive series ranges: a block is written part by
    part, so compaction never holds a second copy of the whole head."""
    if not chunks:
        return
    # Samples per series, roughly (samples after `end` included): enough to cut the series
    # space into parts of about PART_SAMPLES without decoding frozen chunks for it.
    frozen_ids = [c.ids for c in chunks if isinstance(c, FrozenChunk)]
    frozen_counts = [c.counts for c in chunks if isinstance(c, FrozenChunk)]
    raw_ids, raw_counts = np.unique(
        np.concatenate([c.series for c in chunks if isinstance(c, HeadChunk)] + [_NO_IDS]),
        return_counts=True,
    )
    every_id = np.concatenate([*frozen_ids, raw_ids])
    ids, where = np.unique(every_id, return_inverse=True)
    counts = np.bincount(where, weights=np.concatenate([*frozen_counts, raw_counts]))
    group = np.cumsum(counts) // PART_SAMPLES
    for g in np.unique(group).tolist():
        members = ids[group == g]
        low, high = int(members[0]), int(members[-1])
        parts_s, parts_t, parts_v = [], [], []
        for chunk in chunks:
            c_series, c_ts, c_values = series_range(chunk, low, high)
            mask = (c_series >= low) & (c_series <= high) & (c_ts < end)
            if np.any(mask):
                parts_s.append(c_series[mask])
                parts_t.append(c_ts[mask])
                parts_v.append(c_values[mask])
        if parts_s:
            yield merge_parts(parts_s, parts_t, parts_v)


def series_range(chunk: HeadChunk | FrozenChunk, low: int, high: int) -> Arrays:
    """A chunk's samples, decoding only series [low, high] of a frozen one."""
    return chunk.arrays(low, high) if isinstance(chunk, FrozenChunk) else chunk.arrays()


def head_parts(
    chunks: Sequence[HeadChunk | FrozenChunk],
    sids: npt.NDArray[np.int64],
    start: int,
    end: int,
) -> Iterator[Arrays]:
    """The samples of the series `sids` (sorted) in [start, end], chunk by chunk."""
    # a lookup table answers "is this sample's series wanted" in one pass (np.isin sorts)
    wanted = np.zeros(int(sids[-1]) + 1, dtype=bool)
    wanted[sids] = True
    for chunk in chunks:
        if chunk.max_time < start or chunk.min_time > end:
            continue
        c_series, c_ts, c_values = series_range(chunk, int(sids[0]), int(sids[-1]))
        in_range = c_series <= sids[-1]
        mask = (c_ts >= start) & (c_ts <= end) & in_range
        mask[in_range] &= wanted[c_series[in_range]]
        yield c_series[mask], c_ts[mask], c_values[mask]


def merge_parts(
    parts_s: list[npt.NDArray[np.int64]],
    parts_t: list[npt.NDArray[np.int64]],
    parts_v: list[npt.NDArray[np.float64]],
) -> Arrays:
    """The parts joined (the lists are emptied), sorted by (series, time) keeping arrival order
    among equals, with only the first of each (series, time). One array at a time: each step
    lets go of what it replaces, so a long read holds its samples about once, not three times."""
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
    keep = np.r_[True, (sids[1:] != sids[:-1]) | (ts[1:] != ts[:-1])]
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
