"""The metrics store's options and the results it hands back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from watchkeeper.model import Labels
from watchkeeper.model.histogram import FloatHistogram


@dataclass(frozen=True)
class StorageOptions:
    retention_ms: int
    block_duration_ms: int
    out_of_order_window_ms: int = 0
    wal_segment_bytes: int = 64 * 1024 * 1024
    max_series_per_tenant: int = 2_000_000
    # raw head samples (24 bytes each) that trigger compressing them (headchunks.freeze)
    freeze_samples: int = 512 * 1024
    # longest block that merging makes (block_merge.py); None: a tenth of the retention, at
    # most 31 days
    max_block_duration_ms: int | None = None
    # decoded head segments and block reads kept for later reads (read_cache.py); 0: none
    read_cache_bytes: int = 64 * 1024 * 1024
    # exemplars kept per tenant, newest first (exemplars.py); 0: none
    max_exemplars: int = 100_000
    # the newest samples of each series kept apart for short range reads (recent.py): how
    # many per series, and the memory all of them may take (16 bytes a sample); 0: none
    recent_samples_per_series: int = 160
    recent_samples_bytes: int = 64 * 1024 * 1024


@dataclass
class AppendResult:
    appended: int = 0
    resent: int = 0
    # reason -> (number of samples, one example for the error message)
    rejected: dict[str, tuple[int, str]] = field(default_factory=dict)
    # the series id of each of the batch's keys (-1: refused), valid while the tenant's
    # series generation stays `generation`: a writer sending the same keys again passes both
    # back as the batch's series_hint
    series_ids: npt.NDArray[np.int64] | None = None
    generation: int = -1

    @property
    def rejected_count(self) -> int:
        return sum(count for count, _ in self.rejected.values())


@dataclass(frozen=True)
class SeriesSamples:
    labels: Labels
    timestamps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]


@dataclass(frozen=True)
class HistogramSamples:
    """One series' native histogram samples, in time order (read from the store, each is
    decoded when first asked for)."""

    labels: Labels
    timestamps: npt.NDArray[np.int64]
    histograms: Sequence[FloatHistogram]


@dataclass(frozen=True)
class SeriesColumns:
    """Samples of several series in flat arrays, for readers that work on all series at once:
    series i is `labels[i]` with `timestamps[bounds[i]:bounds[i + 1]]` and the same values."""

    labels: list[Labels]
    bounds: npt.NDArray[np.int64]
    timestamps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.labels)

    @staticmethod
    def empty() -> SeriesColumns:
        return SeriesColumns(
            [], np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
        )

    @staticmethod
    def of(series: list[SeriesSamples]) -> SeriesColumns:
        if not series:
            return SeriesColumns.empty()
        lengths = [len(s.timestamps) for s in series]
        return SeriesColumns(
            [s.labels for s in series],
            np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
            np.concatenate([s.timestamps for s in series]).astype(np.int64),
            np.concatenate([s.values for s in series]).astype(np.float64),
        )

    @staticmethod
    def in_label_order(
        series_ids: npt.NDArray[np.int64],
        timestamps: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        labels: Mapping[int, Labels],
    ) -> SeriesColumns:
        """Columns from samples sorted by (series id, time), reordered so that the series
        follow their labels' order (ids follow creation order)."""
        if len(series_ids) == 0:
            return SeriesColumns.empty()
        starts = np.flatnonzero(np.r_[True, series_ids[1:] != series_ids[:-1]])
        found = [labels[s] for s in series_ids[starts].tolist()]
        bounds = np.r_[starts, len(series_ids)].astype(np.int64)
        by_labels = sorted(range(len(found)), key=found.__getitem__)
        if by_labels != list(range(len(found))):
            index = np.array(by_labels, dtype=np.int64)
            lengths = np.diff(bounds)[index]
            rows = np.repeat(bounds[index] - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
            rows += np.arange(int(lengths.sum()))
            timestamps = timestamps[rows]  # one at a time, releasing the unordered one
            values = values[rows]
            bounds = np.r_[0, np.cumsum(lengths)].astype(np.int64)
            found = [found[i] for i in by_labels]
        return SeriesColumns(found, bounds, timestamps, values)

    def series(self) -> list[SeriesSamples]:
        b = self.bounds.tolist()
        return [
            SeriesSamples(labels, self.timestamps[b[i] : b[i + 1]], self.values[b[i] : b[i + 1]])
            for i, labels in enumerate(self.labels)
        ]
