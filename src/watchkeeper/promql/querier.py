"""Where the engine reads series from: a tenant's view of the metrics store."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from watchkeeper.model import Matcher, MatchOp
from watchkeeper.store.protocol import MetricStore
from watchkeeper.store.types import HistogramSamples, SeriesColumns, SeriesSamples


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

    def select_histograms(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int
    ) -> list[HistogramSamples]:
        """The native histogram samples of the matching series in the range, by labels."""
        ...

    def select_newest(
        self, matchers: Sequence[Matcher], at_ms: int, lookback_ms: int
    ) -> SeriesColumns | None:
        """Each matching series' newest sample in (at - lookback, at], by labels, if that
        can be had without a read (None: `select` it)."""
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

    def select_histograms(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int
    ) -> list[HistogramSamples]:
        return self._store.read_histograms(self._tenant, [list(matchers)], start_ms, end_ms)

    def select_newest(
        self, matchers: Sequence[Matcher], at_ms: int, lookback_ms: int
    ) -> SeriesColumns | None:
        return self._store.read_newest(self._tenant, [list(matchers)], at_ms, lookback_ms)


class MemoryQuerier:
    """An in-memory `Querier` over fixed series, for tests, rule unit tests and the
    conformance runner."""

    def __init__(
        self, series: Sequence[SeriesSamples] = (), histograms: Sequence[HistogramSamples] = ()
    ) -> None:
        self._series = sorted(series, key=lambda s: s.labels)
        self._histograms = sorted(histograms, key=lambda s: s.labels)

    def select_newest(
        self, matchers: Sequence[Matcher], at_ms: int, lookback_ms: int
    ) -> SeriesColumns | None:
        return None  # the engine's own lookup over `select` is what tests check against

    def select_histograms(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int
    ) -> list[HistogramSamples]:
        out = []
        for s in self._histograms:
            values = dict(s.labels)
            if not all(m.matches(values.get(m.name, "")) for m in matchers):
                continue
            keep = np.flatnonzero((s.timestamps >= start_ms) & (s.timestamps <= end_ms))
            if len(keep):
                out.append(
                    HistogramSamples(
                        s.labels, s.timestamps[keep], [s.histograms[i] for i in keep.tolist()]
                    )
                )
        return out

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


class PrefetchedQuerier:
    """A `Querier` that answers some selections from samples read beforehand in one go.

    Rule groups evaluate many small queries at one instant, often over the same metrics: one
    store read for all of their instant selectors costs less than a read each. A selection is
    answered from the prefetched samples when its matchers are one of the prefetched matcher
    sets and its time range lies inside the prefetched one; anything else goes to `base`.
    The caller prefetches only what nothing will write before the selections are made.
    """

    def __init__(
        self,
        base: Querier,
        columns: SeriesColumns,
        matcher_sets: Sequence[Sequence[Matcher]],
        start_ms: int,
        end_ms: int,
    ) -> None:
        self._base = base
        self._columns = columns
        self._sets = {tuple(s) for s in matcher_sets}
        self._start, self._end = start_ms, end_ms
        self._rows_by_pair: dict[tuple[str, str], list[int]] = {}
        for row, labels in enumerate(columns.labels):
            for pair in labels:
                self._rows_by_pair.setdefault(pair, []).append(row)

    def select_histograms(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int
    ) -> list[HistogramSamples]:
        return self._base.select_histograms(matchers, start_ms, end_ms)  # not prefetched

    def select_newest(
        self, matchers: Sequence[Matcher], at_ms: int, lookback_ms: int
    ) -> SeriesColumns | None:
        if self._covers(matchers, at_ms - lookback_ms + 1, at_ms):
            return None  # the prefetched samples answer it
        return self._base.select_newest(matchers, at_ms, lookback_ms)

    def _covers(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> bool:
        return self._start <= start_ms and end_ms <= self._end and tuple(matchers) in self._sets

    def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> SeriesColumns:
        if not self._covers(matchers, start_ms, end_ms):
            return self._base.select(matchers, start_ms, end_ms)
        return self._from_prefetched(matchers, start_ms, end_ms)

    def select_batches(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, batch_samples: int
    ) -> Iterable[SeriesColumns]:
        if not self._covers(matchers, start_ms, end_ms):
            return self._base.select_batches(matchers, start_ms, end_ms, batch_samples)
        found = self._from_prefetched(matchers, start_ms, end_ms)
        return [found] if len(found) else []

    def _from_prefetched(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int
    ) -> SeriesColumns:
        columns = self._columns
        candidates: set[int] | None = None
        for m in matchers:
            if m.op is MatchOp.EQUAL and m.value:
                rows = set(self._rows_by_pair.get((m.name, m.value), ()))
                candidates = rows if candidates is None else candidates & rows
                if not candidates:
                    return SeriesColumns.empty()
        order = sorted(candidates) if candidates is not None else range(len(columns.labels))
        whole = start_ms == self._start and end_ms == self._end  # no trimming needed
        kept_labels, starts, ends = [], [], []
        for row in order:
            labels = columns.labels[row]
            values = dict(labels)
            if not all(m.matches(values.get(m.name, "")) for m in matchers):
                continue
            first, last = int(columns.bounds[row]), int(columns.bounds[row + 1])
            if not whole:
                ts = columns.timestamps[first:last]
                last = first + int(np.searchsorted(ts, end_ms, side="right"))
                first += int(np.searchsorted(ts, start_ms, side="left"))
            if last > first:
                kept_labels.append(labels)
                starts.append(first)
                ends.append(last)
        if not kept_labels:
            return SeriesColumns.empty()
        if len(kept_labels) == 1:
            a, b = starts[0], ends[0]
            return SeriesColumns(
                kept_labels,
                np.array([0, b - a], dtype=np.int64),
                columns.timestamps[a:b],
                columns.values[a:b],
            )
        index = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True)])
        lengths = np.array([b - a for a, b in zip(starts, ends, strict=True)], dtype=np.int64)
        bounds = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=bounds[1:])
        return SeriesColumns(kept_labels, bounds, columns.timestamps[index], columns.values[index])
