"""Arrivals: the samples each append made durable, told to whoever listens, and the newest
sample of a set of series, so a listener can tell which arrivals change something.

This is how rules are evaluated on arrival (rules/on_arrival.py) instead of waiting for their
next turn. Listeners run on the appending thread after the samples are readable, so they must
be quick: a few array operations, handing any real work to their own threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from watchkeeper.model import Labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Arrivals:
    """One append's accepted samples, in the batch's order, by series id, and the series the
    append created (id and labels). Ids are handed out in increasing order and never reused."""

    tenant: str
    series_ids: npt.NDArray[np.int64]
    timestamps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    new_series: tuple[tuple[int, Labels], ...] = ()


@dataclass(frozen=True)
class SeriesNewest:
    """The newest sample of each of a set of series, ids ascending; a series with none yet has
    the timestamp INT64_MIN. The value is NaN where only blocks hold the series (after a
    restart, for series not written to since)."""

    series_ids: npt.NDArray[np.int64]
    timestamps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.series_ids)

    @staticmethod
    def empty() -> SeriesNewest:
        none = np.zeros(0, dtype=np.int64)
        return SeriesNewest(none, none, np.zeros(0))


ArrivalListener = Callable[[Arrivals], None]


class ArrivalListeners:
    """A store's listeners. A listener that raises is logged; the append it followed stands."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: tuple[ArrivalListener, ...] = ()

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def add(self, listener: ArrivalListener) -> Callable[[], None]:
        """Start telling `listener`; returns the function that stops it."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

        def remove() -> None:
            with self._lock:
                self._listeners = tuple(x for x in self._listeners if x is not listener)

        return remove

    def tell(self, arrivals: Arrivals) -> None:
        for listener in self._listeners:
            try:
                listener(arrivals)
            except Exception:
                log.exception("an arrival listener failed")
