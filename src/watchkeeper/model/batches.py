"""Columnar sample batches: what every ingest protocol hands to the one write path."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from watchkeeper.model.histogram import FloatHistogram
from watchkeeper.model.labels import Labels, series_key

_NO_ROWS = np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class MetricMetadata:
    """Prometheus metric metadata: TYPE, HELP and UNIT of a metric family."""

    metric: str
    type: str
    help: str
    unit: str


@dataclass
class SeriesBatch:
    """Samples for a set of series, as columns.

    `keys[i]` is the canonical series key (model.series_key) of series i; `labels_of(i)` gives
    its label set, asked only for series the store has not seen. Sample j belongs to series
    `sample_series[j]`, at `timestamps[j]` (ms) with `values[j]`.
    """

    keys: Sequence[bytes]
    labels_of: Callable[[int], Labels]
    sample_series: npt.NDArray[np.int64]
    timestamps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    metadata: list[MetricMetadata] = field(default_factory=list)
    # (series position in `keys`, exemplar labels, value, timestamp ms)
    exemplars: list[tuple[int, Labels, float, int]] = field(default_factory=list)
    # what the store answered for these same keys in the same order before (AppendResult's
    # generation and series_ids): lets it skip looking each key up again
    series_hint: tuple[int, npt.NDArray[np.int64]] | None = None
    # native histogram samples: histogram k belongs to series `histogram_series[k]`, at
    # `histogram_timestamps[k]` (ms)
    histogram_series: npt.NDArray[np.int64] = field(default_factory=lambda: _NO_ROWS)
    histogram_timestamps: npt.NDArray[np.int64] = field(default_factory=lambda: _NO_ROWS)
    histograms: list[FloatHistogram] = field(default_factory=list)

    def __len__(self) -> int:
        """The float samples (histograms are counted apart: `len(batch.histograms)`)."""
        return len(self.timestamps)

    @classmethod
    def from_samples(
        cls, samples: Sequence[tuple[Labels, int, float | FloatHistogram]]
    ) -> SeriesBatch:
        """A batch from (labels, timestamp ms, value or histogram) rows; for small,
        non-hot-path writers."""
        index: dict[Labels, int] = {}
        order: list[Labels] = []
        floats: list[tuple[int, int, float]] = []
        histograms: list[tuple[int, int, FloatHistogram]] = []
        for labels, at, value in samples:
            position = index.get(labels)
            if position is None:
                position = index[labels] = len(order)
                order.append(labels)
            if isinstance(value, FloatHistogram):
                histograms.append((position, at, value))
            else:
                floats.append((position, at, value))
        return cls(
            keys=[series_key(labels) for labels in order],
            labels_of=order.__getitem__,
            sample_series=np.array([f[0] for f in floats], dtype=np.int64),
            timestamps=np.array([f[1] for f in floats], dtype=np.int64),
            values=np.array([f[2] for f in floats], dtype=np.float64),
            histogram_series=np.array([h[0] for h in histograms], dtype=np.int64),
            histogram_timestamps=np.array([h[1] for h in histograms], dtype=np.int64),
            histograms=[h[2] for h in histograms],
        )
