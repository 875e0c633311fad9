"""Everything the metrics store keeps for one tenant: series, index, head samples, blocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from watchkeeper.model import Labels, MetricMetadata, series_key
from watchkeeper.store.blocks import BlockMeta
from watchkeeper.store.ordering import INT64_MIN
from watchkeeper.store.postings import Postings

INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class HeadChunk:
    """Samples appended together, durable and visible; arrays are never modified in place."""

    series: npt.NDArray[np.int64]
    timestamps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]

    def after(self, end: int) -> HeadChunk:
        """The samples at or after `end`."""
        keep = self.timestamps >= end
        if np.all(keep):
            return self
        return HeadChunk(self.series[keep], self.timestamps[keep], self.values[keep])


@dataclass
class TenantState:
    name: str
    directory: Path
    # key -> series id, including series whose creating write is not yet durable
    keys: dict[bytes, int] = field(default_factory=dict)
    # durable, visible series
    labels: dict[int, Labels] = field(default_factory=dict)
    postings: Postings = field(default_factory=Postings)
    chunks: list[HeadChunk] = field(default_factory=list)
    head_samples: int = 0
    head_min_time: int = INT64_MAX
    head_max_time: int = INT64_MIN
    blocks: list[BlockMeta] = field(default_factory=list)
    metadata: dict[str, MetricMetadata] = field(default_factory=dict)
    # series with samples in at least one block
    series_in_blocks: set[int] = field(default_factory=set)

    @property
    def blocks_max_time(self) -> int:
        return max((b.max_time for b in self.blocks), default=INT64_MIN)

    @property
    def newest_time(self) -> int:
        return max(self.head_max_time, self.blocks_max_time)

    def reset_head(self) -> None:
        self.chunks = []
        self.head_samples = 0
        self.head_min_time = INT64_MAX
        self.head_max_time = INT64_MIN

    def add_chunk(self, chunk: HeadChunk) -> None:
        self.chunks.append(chunk)
        self.head_samples += len(chunk.timestamps)
        if len(chunk.timestamps):
            self.head_min_time = min(self.head_min_time, int(chunk.timestamps.min()))
            self.head_max_time = max(self.head_max_time, int(chunk.timestamps.max()))

    def head_arrays(
        self,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        chunks = list(self.chunks)
        if not chunks:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty.copy(), np.empty(0, dtype=np.float64)
        return (
            np.concatenate([c.series for c in chunks]),
            np.concatenate([c.timestamps for c in chunks]),
            np.concatenate([c.values for c in chunks]),
        )

    def add_series(self, sid: int, labels: Labels) -> None:
        if sid not in self.labels:
            self.labels[sid] = labels
            self.postings.add(sid, labels)

    def drop_series(self, sid: int) -> None:
        labels = self.labels.pop(sid, None)
        if labels is not None:
            self.postings.remove(sid, labels)
            self.keys.pop(series_key(labels), None)
