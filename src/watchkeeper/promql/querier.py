"""Where the engine reads series from: a tenant's view of the metrics store."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from watchkeeper.model import Matcher
from watchkeeper.store.protocol import MetricStore
from watchkeeper.store.types import SeriesColumns, SeriesSamples


class Querier(Protocol):
    """Samples of the series matching every matcher, with timestamps in [start_ms, end_ms]
    (both inclusive), each series sorted by time, the series sorted by labels, in flat arrays.
    Staleness markers are returned as stored (the StaleNaN bit pattern)."""

    def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> SeriesColumns: ...

    def select_batches(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, batch_samples: int
    ) -> Iterable[SeriesColumns]:
        """`select` in batches of whole series, about `batch_samples` samples each: each batch
        in label order, the batches in any order."""
        ...


class StoreQuerier:
    """A `Querier` over one tenant of a metrics store."""

    def __init__(self, store: MetricStore, tenant: str) -> None:
        self._store = store
        self._tenant = tenant

    def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> SeriesColumns:
        return self._store.read_columns(self._tenant, [list(matchers)], start_ms, end_ms)

    def select_batches(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, batch_samples: int
    ) -> Iterable[SeriesColumns]:
        return self._store.read_column_batches(
            self._tenant, [list(matchers)], start_ms, end_ms, batch_samples
        )


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

    def select_batches(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, batch_samples: int
    ) -> Iterable[SeriesColumns]:
        """Batches in reverse label order, so that tests see the engine put results back in
        order whatever order batches come in."""
        found = self.select(matchers, start_ms, end_ms).series()
        batches: list[list[SeriesSamples]] = [[]]
        held = 0
        for series in found:
            if batches[-1] and batch_samples and held + len(series.timestamps) > batch_samples:
                batches.append([])
                held = 0
            batches[-1].append(series)
            held += len(series.timestamps)
        return [SeriesColumns.of(batch) for batch in reversed(batches) if batch]
