"""The metrics store's options and the results it hands back."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from watchkeeper.model import Labels


@dataclass(frozen=True)
class StorageOptions:
    retention_ms: int
    block_duration_ms: int
    out_of_order_window_ms: int = 0
    wal_segment_bytes: int = 64 * 1024 * 1024
    max_series_per_tenant: int = 2_000_000
    # raw head samples (24 bytes each) that trigger compressing them (headchunks.freeze)
    freeze_samples: int = 512 * 1024


@dataclass
class AppendResult:
    appended: int = 0
    resent: int = 0
    # reason -> (number of samples, one example for the error message)
    rejected: dict[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def rejected_count(self) -> int:
        return sum(count for count, _ in self.rejected.values())


@dataclass(frozen=True)
class SeriesSamples:
    labels: Labels
    timestamps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
