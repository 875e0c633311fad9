"""Where the engine reads series from: a tenant's view of the metrics store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from watchkeeper.model import Matcher
from watchkeeper.store.protocol import MetricStore
from watchkeeper.store.types import SeriesColumns, SeriesSamples


class Querier(Protocol):
    """Samples of the series matching every matcher, with timestamps in [start_ms, end_ms]
    (both inclusive), each series sorted by time, the series sorted by labels, in flat arrays.
    Staleness markers are returned as stored (the StaleNaN bit pattern)."""

    def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> SeriesColumns: ...


class StoreQuerier:
    """A `Querier` over one tenant of a metrics store."""

    def __init__(self, store: MetricStore, tenant: str) -> None:
        self._store = store
        self._tenant = tenant

    def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> SeriesColumns:
        return self._store.read_columns(self._tenant, [list(matchers)], start_ms, end_ms)


class MemoryQuerier:
    """An in-memory `Querier` over fixed series, for tests, rule unit tests and the
    conformance runner."""

    def __init__(self, series: Sequence[SeriesSamples] = ()) -> None:
        self._series = sorted(series, key=lambda s: s.labels)

    def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> SeriesColumns:
        out: list[SeriesSamples] = []
        for s in self._series:
            values = dict(s.labels)
            if not all(m.matches(values.get(m.name, "")) for m in matchers):
                continue
            keep = (s.timestamps >= start_ms) & (s.timestamps <= end_ms)
            if keep.any():
                out.append(SeriesSamples(s.labels, s.timestamps[keep], s.values[keep]))
        return SeriesColumns.of(out)
