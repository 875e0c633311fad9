"""Per-series time bounds, in arrays indexed by series id: the newest timestamp and its value's
bits (for ordering checks) and the oldest (for time-range filtering), without touching samples."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from watchkeeper.store.ordering import INT64_MIN

INT64_MAX = np.iinfo(np.int64).max


class SeriesTimes:
    """Per-series newest timestamp (and its value's bits) and oldest timestamp, by series id."""

    def __init__(self) -> None:
        self.max_ts = np.full(1024, INT64_MIN, dtype=np.int64)
        self.last_bits = np.zeros(1024, dtype=np.int64)
        self.min_ts = np.full(1024, INT64_MAX, dtype=np.int64)

    def ensure(self, sid: int) -> None:
        if sid < len(self.max_ts):
            return
        size = max(sid + 1, 2 * len(self.max_ts))
        grow = size - len(self.max_ts)
        self.max_ts = np.concatenate([self.max_ts, np.full(grow, INT64_MIN, dtype=np.int64)])
        self.last_bits = np.concatenate([self.last_bits, np.zeros(grow, dtype=np.int64)])
        self.min_ts = np.concatenate([self.min_ts, np.full(grow, INT64_MAX, dtype=np.int64)])

    def record(
        self, sids: npt.NDArray[np.int64], ts: npt.NDArray[np.int64], bits: npt.NDArray[np.int64]
    ) -> None:
        if len(sids) == 0:
            return
        self.ensure(int(sids.max()))
        np.minimum.at(self.min_ts, sids, ts)
        np.maximum.at(self.max_ts, sids, ts)
        newest = ts == self.max_ts[sids]
        self.last_bits[sids[newest]] = bits[newest]

    def overlapping(
        self, sids: npt.NDArray[np.int64], start: int, end: int
    ) -> npt.NDArray[np.bool_]:
        return (self.min_ts[sids] <= end) & (self.max_ts[sids] >= start)
