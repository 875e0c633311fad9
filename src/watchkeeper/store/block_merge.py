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
from watchkeeper.store.histograms import (
    HistogramColumns,
    concatenate,
    read_block_file,
    sorted_unique,
)
from watchkeeper.store.merge import parts_in_storage_order
from watchkeeper.store.series_index import NameOf

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
    """The samples of `sources` (oldest first) as parts for write_block; a sample stored twice
    (overlapping sources) is kept once, from the oldest source."""
    block_ids = [np.sort(reader.series_ids(block)) for block in sources]
    if not any(len(ids) for ids in block_ids):
        return
    rows = [reader.row_counts(b, ids) for b, ids in zip(sources, block_ids, strict=True)]
    ids, where = np.unique(np.concatenate(block_ids), return_inverse=True)
    counts = np.bincount(where, weights=np.concatenate(rows))
    yield from parts_in_storage_order(
        ids, counts, name_of, lambda wanted: reader.parts(sources, wanted, INT64_MIN, INT64_MAX)
    )


def merged_histograms(sources: list[BlockMeta]) -> HistogramColumns:
    """The histogram samples of `sources` (oldest first), by series and time; one stored twice
    is kept once, from the oldest source."""
    return sorted_unique(concatenate(read_block_file(b.path) for b in sources if b.histograms))
