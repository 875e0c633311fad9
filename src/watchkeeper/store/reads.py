"""One read of the metrics store: the blocks and head chunks it covers, fixed when it starts,
cut into batches of series and laid out as columns."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from watchkeeper.model import Labels
from watchkeeper.store.blocks import BlockMeta, BlockReader
from watchkeeper.store.headchunks import FrozenChunk, HeadChunk
from watchkeeper.store.label_order import LabelOrder
from watchkeeper.store.merge import columns_in_label_order, head_parts, merge_parts
from watchkeeper.store.read_cache import Decoded, ReadCache
from watchkeeper.store.series_index import name_of, storage_order
from watchkeeper.store.types import SeriesColumns


@dataclass(frozen=True)
class ReadSnapshot:
    """What a read sees: the blocks and the head's chunks overlapping its time range (appends
    after the snapshot add chunks the read does not see), and the wanted series' labels."""

    reader: BlockReader
    blocks: list[BlockMeta]
    chunks: list[HeadChunk | FrozenChunk]
    labels: dict[int, Labels]
    label_order: LabelOrder
    cache: Decoded | None = None  # decoded head segments and block reads
    id_bound: int = 0  # above every series id in the chunks

    def sample_counts(self, sids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """About how many samples each of `sids` (ascending) has to be decoded, from the
        block indexes and frozen chunks (raw head chunks, at most storage.freeze_samples in
        all, are left out)."""
        counts = np.zeros(len(sids), dtype=np.int64)
        for block in self.blocks:
            counts += self.reader.row_counts(block, sids)
        for chunk in self.chunks:
            if isinstance(chunk, FrozenChunk):
                counts += chunk.index.row_counts(sids)
        return counts

    def as_scan(self) -> ReadSnapshot:
        """The same read, keeping nothing it decodes (ReadCache.is_scan)."""
        if not isinstance(self.cache, ReadCache):
            return self
        return replace(self, cache=self.cache.for_scan())

    def batches(
        self,
        sids: npt.NDArray[np.int64],
        batch_samples: int,
        counts: npt.NDArray[np.int64] | None = None,
    ) -> Iterator[npt.NDArray[np.int64]]:
        """`sids` (ascending) cut into batches of whole series holding about `batch_samples`
        samples (one batch for 0), in storage order so each batch decodes its own stretch of
        each block; each batch ascending. `counts`: `sample_counts(sids)`, if known."""
        if batch_samples <= 0 or len(sids) < 2:
            yield sids
            return
        if counts is None:
            counts = self.sample_counts(sids)
        if int(counts.sum()) <= batch_samples:
            yield sids
            return
        ordered = storage_order(sids, name_of(self.labels))
        group = (np.cumsum(counts[np.searchsorted(sids, ordered)]) - 1) // batch_samples
        for members in np.split(ordered, np.flatnonzero(np.diff(group)) + 1):
            yield np.sort(members)

    def read(self, sids: npt.NDArray[np.int64], start: int, end: int) -> SeriesColumns:
        """The samples of `sids` (ascending) in [start, end], the series in label order."""
        parts = list(self.reader.parts(self.blocks, sids, start, end, self.cache))
        head_s, head_t, head_v = [], [], []
        for part_s, part_t, part_v in head_parts(
            self.chunks, sids, start, end, self.cache, self.id_bound
        ):
            head_s.append(part_s)
            head_t.append(part_t)
            head_v.append(part_v)
        if head_s:
            head = merge_parts(head_s, head_t, head_v)
            if len(head[0]):
                parts.append(head)
        if not parts:
            return SeriesColumns.empty()
        by_labels = self.label_order.order(sids, self.labels)
        return columns_in_label_order(parts, sids, self.labels, by_labels)
