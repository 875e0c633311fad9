"""Everything the metrics store keeps for one tenant: series, index, head samples, blocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from watchkeeper.model import Labels, MetricMetadata, series_key
from watchkeeper.store.blocks import BlockMeta
from watchkeeper.store.exemplars import ExemplarRing
from watchkeeper.store.headchunks import FrozenChunk, HeadChunk, RawRun
from watchkeeper.store.histograms import HistogramColumns, HistogramHead
from watchkeeper.store.label_order import LabelOrder
from watchkeeper.store.ordering import INT64_MIN
from watchkeeper.store.postings import Postings

INT64_MAX = np.iinfo(np.int64).max


@dataclass
class TenantState:
    name: str
    directory: Path
    # key -> series id, including series whose creating write is not yet durable
    keys: dict[bytes, int] = field(default_factory=dict)
    # durable, visible series
    labels: dict[int, Labels] = field(default_factory=dict)
    postings: Postings = field(default_factory=Postings)
    # the series ranked in label order, refreshed in the background (label_order.py)
    label_order: LabelOrder = field(default_factory=LabelOrder)
    # series added or removed so far: the label order is stale when this moved on
    series_changes: int = 0
    # frozen chunks first, then raw ones, each run in arrival order
    chunks: list[HeadChunk | FrozenChunk] = field(default_factory=list)
    # holds the raw chunks' samples: the raw chunks listed above are views into it
    raw: RawRun = field(default_factory=RawRun)
    head_samples: int = 0  # float samples; the histogram head counts its own
    raw_samples: int = 0
    # of both float and histogram samples
    head_min_time: int = INT64_MAX
    head_max_time: int = INT64_MIN
    histograms: HistogramHead = field(default_factory=HistogramHead)
    # series that have (or had) native histogram samples in the head or a block
    histogram_series: set[int] = field(default_factory=set)
    blocks: list[BlockMeta] = field(default_factory=list)
    metadata: dict[str, MetricMetadata] = field(default_factory=dict)
    # series with samples in at least one block
    series_in_blocks: set[int] = field(default_factory=set)
    exemplars: ExemplarRing = field(default_factory=lambda: ExemplarRing(0))
    # series forgotten so far: series ids handed out before stay valid while this holds
    dropped: int = 0
    # retention deleted the samples at or before this time (the newest end of a deleted block)
    deleted_through: int = INT64_MIN

    @property
    def blocks_max_time(self) -> int:
        return max((b.max_time for b in self.blocks), default=INT64_MIN)

    @property
    def newest_time(self) -> int:
        return max(self.head_max_time, self.blocks_max_time)

    def reset_head(self) -> None:
        """Empty the float head (a cut puts back what stays; the histogram head is split by
        the cut itself)."""
        self.chunks = []
        self.raw = RawRun(self.raw.reached)
        self.head_samples = 0
        self.raw_samples = 0
        self.head_min_time = INT64_MAX
        self.head_max_time = INT64_MIN

    def add_chunk(self, chunk: HeadChunk | FrozenChunk) -> None:
        if len(chunk) == 0:
            return
        if isinstance(chunk, HeadChunk):
            chunk = self.raw.append(chunk)
            self.raw_samples += len(chunk)
        self.chunks.append(chunk)
        self.head_samples += len(chunk)
        self.head_min_time = min(self.head_min_time, chunk.min_time)
        self.head_max_time = max(self.head_max_time, chunk.max_time)

    def add_histograms(self, columns: HistogramColumns) -> None:
        if len(columns) == 0:
            return
        self.histograms.add(columns)
        self.histogram_series.update(np.unique(columns.sids).tolist())
        self.head_min_time = min(self.head_min_time, columns.min_time)
        self.head_max_time = max(self.head_max_time, columns.max_time)

    @property
    def head_empty(self) -> bool:
        return self.head_samples == 0 and self.histograms.samples == 0

    def raw_run(self) -> tuple[int, list[HeadChunk | FrozenChunk]]:
        """Where the raw chunks start in `chunks`, and the raw chunks."""
        start = len(self.chunks)
        while start > 0 and not self.chunks[start - 1].frozen:
            start -= 1
        return start, self.chunks[start:]

    def replace_raw(
        self, start: int, raw: list[HeadChunk | FrozenChunk], frozen: list[FrozenChunk]
    ) -> bool:
        """Swap the raw chunks `raw` (found at `start`) for their frozen form, if unchanged."""
        current = self.chunks[start : start + len(raw)]
        if len(current) != len(raw) or any(a is not b for a, b in zip(current, raw, strict=True)):
            return False
        self.chunks = [*self.chunks[:start], *frozen, *self.chunks[start + len(raw) :]]
        self.raw_samples -= sum(len(f) for f in frozen)
        # the raw chunks that came in meanwhile move to a new run; the old one goes
        after = start + len(frozen)
        self.raw = RawRun(self.raw.reached)
        self.chunks[after:] = [self._raw_view(c) for c in self.chunks[after:]]
        return True

    def _raw_view(self, chunk: HeadChunk | FrozenChunk) -> HeadChunk | FrozenChunk:
        return self.raw.append(chunk) if isinstance(chunk, HeadChunk) else chunk

    def read_chunks(self, since: int) -> list[HeadChunk | FrozenChunk]:
        """The head as a read from `since` on sees it: the frozen chunks, then the raw ones as
        few segment-sized chunks (without those older than `since`)."""
        start, _ = self.raw_run()
        return [*self.chunks[:start], *self.raw.views(since)]

    def add_series(self, sid: int, labels: Labels) -> None:
        if sid not in self.labels:
            self.labels[sid] = self.postings.add(sid, labels)
            self.series_changes += 1

    def drop_series(self, sid: int) -> None:
        labels = self.labels.pop(sid, None)
        if labels is not None:
            self.postings.remove(sid, labels)
            self.series_changes += 1
            self.dropped += 1
            self.keys.pop(series_key(labels), None)
