"""Merging a tenant's 2 h blocks into longer ones as they age, as Prometheus' compactor does.

A read pays a fixed cost per block it touches (index lookup, opening the file, decoding at
least one row group per metric), so a 24 h query over twelve 2 h blocks pays it twelve times,
and a 30-day one 360 times. Blocks are merged in windows of 3x, 9x, ... the block duration
(6 h, 18 h, 54 h for 2 h blocks), aligned to multiples of the window, up to a tenth of the
retention and never past 31 days, like Prometheus' exponential block ranges.

A window is merged once every block in it is older than the newest block: nothing can be
stored there any more (the ordering rules refuse samples at or before the newest block's end),
and the newest block stays as written for a while, as in Prometheus. The merged block records
its sources; the store lets go of them once no read is using them (block_leases.py), and any
still on disk when the store opens are removed then.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from watchkeeper.store.blocks import BlockMeta, BlockReader, SortedPart
from watchkeeper.store.merge import PART_SAMPLES, merge_parts
from watchkeeper.store.series_index import NameOf, storage_order

MAX_BLOCK_MS = 31 * 24 * 3600 * 1000
RANGE_STEP = 3
INT64_MIN = int(np.iinfo(np.int64).min)
INT64_MAX = int(np.iinfo(np.int64).max)


def merge_ranges(block_duration_ms: int, retention_ms: int) -> list[int]:
    """The window lengths blocks are merged into: 3x, 9x, ... the block duration, at most a
    tenth of the retention and 31 days."""
    longest = min(retention_ms // 10, MAX_BLOCK_MS)
    ranges = []
    size = block_duration_ms * RANGE_STEP
    while size <= longest:
        ranges.append(size)
        size *= RANGE_STEP
    return ranges


def plan_merge(blocks: list[BlockMeta], ranges: list[int]) -> list[BlockMeta] | None:
    """Blocks (oldest first) to merge next: two or more lying inside one aligned window of the
    shortest range that has such a group, all of the window older than the newest block."""
    if len(blocks) < 3:
        return None
    newest_start = blocks[-1].min_time
    candidates = blocks[:-1]
    for size in ranges:
        groups: dict[int, list[BlockMeta]] = {}
        for block in candidates:
            window = block.min_time // size
            if block.max_time // size == window:  # a longer block than the window spans two
                groups.setdefault(window, []).append(block)
        for window, group in sorted(groups.items()):
            if len(group) > 1 and (window + 1) * size <= newest_start:
                return group
    return None


def merged_parts(
    reader: BlockReader, sources: list[BlockMeta], name_of: NameOf
) -> Iterator[SortedPart]:
    """The samples of `sources` as parts for write_block: whole series in storage order, about
    PART_SAMPLES samples each, time-sorted, a sample stored twice (overlapping sources) kept
    once, from the oldest source."""
    counted: dict[int, int] = {}
    for block in sources:
        ids = np.sort(reader.series_ids(block))
        rows = reader.row_counts(block, ids)
        for sid, count in zip(ids.tolist(), rows.tolist(), strict=True):
            counted[sid] = counted.get(sid, 0) + count
    if not counted:
        return
    ids = np.array(sorted(counted), dtype=np.int64)
    counts = np.array([counted[s] for s in ids.tolist()], dtype=np.int64)
    ordered = storage_order(ids, name_of)
    group = np.cumsum(counts[np.searchsorted(ids, ordered)]) // PART_SAMPLES
    for g in np.unique(group).tolist():
        members = ordered[group == g]  # storage order
        wanted = np.sort(members)
        # each sample carries its series' place in `members`: one stable sort by (place, time)
        # gives storage order, time order, and the oldest source first among equal times
        place = np.empty(len(members), dtype=np.int64)
        place[np.searchsorted(wanted, members)] = np.arange(len(members), dtype=np.int64)
        parts_s, parts_t, parts_v = [], [], []
        for part_s, part_t, part_v in reader.parts(sources, wanted, INT64_MIN, INT64_MAX):
            parts_s.append(place[np.searchsorted(wanted, part_s)])
            parts_t.append(part_t)
            parts_v.append(part_v)
        if parts_s:
            places, ts, vals = merge_parts(parts_s, parts_t, parts_v)
            yield members[places], ts, vals
