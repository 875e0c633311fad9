"""Columnar sample batches: what every ingest protocol hands to the one write path."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from watchkeeper.model.labels import Labels, series_key


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

    def __len__(self) -> int:
        return len(self.timestamps)

    @classmethod
    def from_samples(cls, samples: Sequence[tuple[Labels, int, float]]) -> SeriesBatch:
        """A batch from (labels, timestamp ms, value) rows; for small, non-hot-path writers."""
        index: dict[Labels, int] = {}
        order: list[Labels] = []
        series = np.empty(len(samples), dtype=np.int64)
        for row, (labels, _, _) in enumerate(samples):
            position = index.get(labels)
            if position is None:
                position = index[labels] = len(order)
                order.append(labels)
            series[row] = position
        return cls(
            keys=[series_key(labels) for labels in order],
            labels_of=order.__getitem__,
            sample_series=series,
            timestamps=np.fromiter((s[1] for s in samples), dtype=np.int64, count=len(samples)),
            values=np.fromiter((s[2] for s in samples), dtype=np.float64, count=len(samples)),
        )
