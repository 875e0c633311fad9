"""Exemplars of one tenant: a bounded ring of the newest, as Prometheus keeps them.

An exemplar ties a sample of a series to something outside it, most often a trace
(`{trace_id="..."}` with a value and a time). Targets expose the latest exemplar of a series on
every scrape until a newer one comes, so one identical to the series' previous exemplar is
not kept again. When the ring is full the oldest go (`storage.max_exemplars`, per tenant).
They are written to the WAL with the samples and kept in checkpoints, so they survive a
restart like the samples they belong to.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from watchkeeper.model import Labels


@dataclass(frozen=True)
class Exemplar:
    series: int  # series id
    labels: Labels
    value: float
    timestamp_ms: int


class ExemplarRing:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ring: deque[Exemplar] = deque(maxlen=max(capacity, 1))
        self._last: dict[int, Exemplar] = {}  # each series' newest, to skip repeats

    def __len__(self) -> int:
        return len(self._ring) if self.capacity else 0

    def add(self, exemplars: Iterable[Exemplar]) -> list[Exemplar]:
        """Keep the exemplars that are new; returns them (what the WAL must hold)."""
        if not self.capacity:
            return []
        kept = []
        for exemplar in exemplars:
            last = self._last.get(exemplar.series)
            if last is not None and (last == exemplar or exemplar.timestamp_ms < last.timestamp_ms):
                continue  # a repeat, or older than what the series has: Prometheus drops both
            if len(self._ring) == self._ring.maxlen:
                oldest = self._ring[0]
                if self._last.get(oldest.series) is oldest:
                    del self._last[oldest.series]
            self._ring.append(exemplar)
            self._last[exemplar.series] = exemplar
            kept.append(exemplar)
        return kept

    def select(self, series: set[int], start_ms: int, end_ms: int) -> list[Exemplar]:
        """The exemplars of these series in [start, end], oldest first."""
        return [
            e for e in self._ring if e.series in series and start_ms <= e.timestamp_ms <= end_ms
        ]

    def all(self) -> list[Exemplar]:
        return list(self._ring)

    def forget(self, series: set[int]) -> None:
        """Drop the exemplars of series the store no longer has."""
        if not series:
            return
        kept = [e for e in self._ring if e.series not in series]
        self._ring = deque(kept, maxlen=self._ring.maxlen)
        for sid in series:
            self._last.pop(sid, None)
