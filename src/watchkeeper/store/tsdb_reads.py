"""The read side of the embedded metrics store (tsdb.MetricsDB): series, label names and
values, metadata, exemplars, float and native histogram samples and the TSDB status, each over
one tenant's index, head and blocks. A mixin of MetricsDB, kept apart so each module holds one
side of the store."""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from watchkeeper.model import Labels, Matcher, MetricMetadata
from watchkeeper.store import recent
from watchkeeper.store.arrivals import SeriesNewest
from watchkeeper.store.block_set import BlockSet
from watchkeeper.store.exemplars import Exemplar
from watchkeeper.store.histograms import concatenate, read_block_file, sorted_unique
from watchkeeper.store.ordering import INT64_MIN
from watchkeeper.store.read_cache import ReadCache
from watchkeeper.store.reads import ReadSnapshot
from watchkeeper.store.recent import Gathered, RecentSamples, RingRead
from watchkeeper.store.series_times import SeriesTimes
from watchkeeper.store.status import tsdb_status
from watchkeeper.store.tenant import INT64_MAX, TenantState
from watchkeeper.store.types import HistogramSamples, SeriesColumns, SeriesSamples


class StoreReads:
    # set by MetricsDB.__init__
    _tenants: dict[str, TenantState]
    _state_lock: threading.RLock
    _times: SeriesTimes
    _visible: SeriesTimes
    _recent: RecentSamples
    _blocks: BlockSet
    _blocks_dir: Path
    _next_sid: int
    read_cache: ReadCache

    # --- reading -----------------------------------------------------------------------

    def tenants(self) -> list[str]:
        return sorted(self._tenants)

    def series_count(self, tenant: str | None = None) -> int:
        with self._state_lock:
            if tenant is not None:
                state = self._tenants.get(tenant)
                return 0 if state is None else len(state.labels)
            return sum(len(t.labels) for t in self._tenants.values())

    def _matching(
        self,
        state: TenantState,
        matcher_sets: Sequence[Sequence[Matcher]] | None,
        start: int,
        end: int,
    ) -> npt.NDArray[np.int64]:
        with self._state_lock:
            ids = (
                state.postings.all_ids()
                if not matcher_sets
                else state.postings.select_any(matcher_sets)
            )
        sids = np.fromiter(ids, dtype=np.int64, count=len(ids))
        if len(sids) == 0:
            return sids
        self._times.ensure(int(sids.max()))
        return sids[self._times.overlapping(sids, start, end)]

    def _selected(
        self,
        tenant: str,
        matcher_sets: Sequence[Sequence[Matcher]] | None,
        start: int,
        end: int,
    ) -> tuple[TenantState, npt.NDArray[np.int64]]:
        """The tenant (an empty one if unknown) and its matching series with samples in range."""
        state = self._tenants.get(tenant)
        if state is None:
            return TenantState(tenant, self._blocks_dir / tenant), np.empty(0, dtype=np.int64)
        return state, self._matching(state, matcher_sets, start, end)

    def newest_samples(self, tenant: str, matchers: Sequence[Matcher]) -> SeriesNewest:
        """The newest sample of every series the matchers select, whatever its age."""
        state = self._tenants.get(tenant)
        if state is None:
            return SeriesNewest.empty()
        with self._state_lock:
            ids = state.postings.select_any([matchers])
            sids = np.sort(np.fromiter(ids, dtype=np.int64, count=len(ids)))
            if len(sids) == 0:
                return SeriesNewest.empty()
            self._times.ensure(int(sids[-1]))
            timestamps = self._times.max_ts[sids]
            values = self._times.last_bits[sids].view(np.float64)
            # the head records each series' newest value; blocks only its time
            values[timestamps <= state.blocks_max_time] = np.nan
        return SeriesNewest(sids, timestamps, values)

    def read_newest(
        self, tenant: str, matcher_sets: Sequence[Sequence[Matcher]], at: int, lookback: int
    ) -> SeriesColumns | None:
        """What an instant selector at `at` reads, from memory: each matching series' newest
        sample if it is at or before `at` and newer than `at - lookback` (staleness markers
        included), one sample per series in label order. None when that needs a real read:
        a series with samples after `at` (a query of the past), or whose newest sample within
        the lookback is not in the head or not yet visible, or a native histogram series."""
        state = self._tenants.get(tenant)
        if state is None:
            return SeriesColumns.empty()
        with self._state_lock:
            ids = state.postings.select_any(matcher_sets)
            sids = np.sort(np.fromiter(ids, dtype=np.int64, count=len(ids)))
            if len(sids) == 0:
                return SeriesColumns.empty()
            self._times.ensure(int(sids[-1]))
            self._visible.ensure(int(sids[-1]))
            newest = self._times.max_ts[sids]
            if int(newest.max()) > at:
                return None
            fresh = newest > at - lookback
            sids, newest = sids[fresh], newest[fresh]
            if len(sids) == 0:
                return SeriesColumns.empty()
            if not np.array_equal(self._visible.max_ts[sids], newest):
                return None
            if state.histogram_series and not state.histogram_series.isdisjoint(sids.tolist()):
                return None
            values = self._visible.last_bits[sids].view(np.float64)
            labels = [state.labels[int(s)] for s in sids.tolist()]
            order = state.label_order.order(sids, dict(zip(sids.tolist(), labels, strict=True)))
        return SeriesColumns(
            [labels[i] for i in order],
            np.arange(len(order) + 1, dtype=np.int64),
            newest[order],
            values[order],
        )

    def series(
        self,
        tenant: str,
        matcher_sets: Sequence[Sequence[Matcher]],
        start: int = INT64_MIN,
        end: int = INT64_MAX,
        limit: int = 0,
    ) -> list[Labels]:
        """Label sets of series matching any matcher set with samples in [start, end], sorted."""
        state, sids = self._selected(tenant, matcher_sets, start, end)
        with self._state_lock:
            found = sorted(state.labels[int(s)] for s in sids)
        return found[:limit] if limit > 0 else found

    def label_names(
        self,
        tenant: str,
        matcher_sets: Sequence[Sequence[Matcher]] | None = None,
        start: int = INT64_MIN,
        end: int = INT64_MAX,
    ) -> list[str]:
        state, sids = self._selected(tenant, matcher_sets, start, end)
        with self._state_lock:
            if not matcher_sets and len(sids) == len(state.labels):
                return state.postings.names()
            names = {name for s in sids.tolist() for name, _ in state.labels[s]}
        return sorted(names)

    def label_values(
        self,
        tenant: str,
        name: str,
        matcher_sets: Sequence[Sequence[Matcher]] | None = None,
        start: int = INT64_MIN,
        end: int = INT64_MAX,
    ) -> list[str]:
        state, sids = self._selected(tenant, matcher_sets, start, end)
        with self._state_lock:
            if not matcher_sets and len(sids) == len(state.labels):
                return sorted(state.postings.values(name))
            wanted = set(sids.tolist())
            values = {
                v for v, ids in state.postings.values(name).items() if not ids.isdisjoint(wanted)
            }
        return sorted(values)

    def exemplars(
        self,
        tenant: str,
        matcher_sets: Sequence[Sequence[Matcher]],
        start: int = INT64_MIN,
        end: int = INT64_MAX,
    ) -> list[tuple[Labels, list[Exemplar]]]:
        """Exemplars in [start, end] of the series matching any matcher set, by series."""
        state = self._tenants.get(tenant)
        if state is None:
            return []
        with self._state_lock:
            ids = state.postings.select_any(matcher_sets)
            found = state.exemplars.select(ids, start, end)
            by_series: dict[int, list[Exemplar]] = {}
            for exemplar in found:
                by_series.setdefault(exemplar.series, []).append(exemplar)
            return sorted((state.labels[sid], kept) for sid, kept in by_series.items())

    def metadata(self, tenant: str) -> dict[str, MetricMetadata]:
        state = self._tenants.get(tenant)
        if state is None:
            return {}
        with self._state_lock:
            return dict(state.metadata)

    def read(
        self,
        tenant: str,
        matcher_sets: Sequence[Sequence[Matcher]],
        start: int = INT64_MIN,
        end: int = INT64_MAX,
    ) -> list[SeriesSamples]:
        """Samples of the matching series in [start, end], per series sorted by time, sorted by
        labels. Each (series, timestamp) appears once: the first value written wins."""
        return self.read_columns(tenant, matcher_sets, start, end).series()

    def read_columns(
        self,
        tenant: str,
        matcher_sets: Sequence[Sequence[Matcher]],
        start: int = INT64_MIN,
        end: int = INT64_MAX,
    ) -> SeriesColumns:
        """`read` as flat arrays (no object per series), for the query engine."""
        parts = list(self.read_column_batches(tenant, matcher_sets, start, end, 0))
        return parts[0] if parts else SeriesColumns.empty()

    def read_column_batches(
        self,
        tenant: str,
        matcher_sets: Sequence[Sequence[Matcher]],
        start: int,
        end: int,
        batch_samples: int,
    ) -> Iterator[SeriesColumns]:
        """`read_columns` in batches of whole series holding about `batch_samples` samples
        each (all at once when 0), so that a query working series by series never holds every
        sample. Batches follow storage order, so each decodes its own stretch of each block;
        series are in label order within a batch, not across batches."""
        state = self._tenants.get(tenant)
        if state is None:
            return
        sids = np.sort(self._matching(state, matcher_sets, start, end))
        if len(sids) == 0:
            return
        with self._state_lock:
            from_rings = self._begin_recent(state, sids, start, end, whole=batch_samples <= 0)
        if from_rings is not None:
            rest = yield from self._read_recent(from_rings, batch_samples)
            if rest is None:
                return
            sids = rest  # rings changed under the read: the rest from the head
        with self._state_lock:
            snapshot = ReadSnapshot(
                self._blocks.reader,
                [b for b in state.blocks if b.max_time >= start and b.min_time <= end],
                [c for c in state.read_chunks(start) if c.min_time <= end and c.max_time >= start],
                {int(s): state.labels[int(s)] for s in sids.tolist()},
                state.label_order,
                self.read_cache,
                self._next_sid,  # ids are handed out in order: the chunks' are all below
            )
            # under the lock that a merge or retention replaces blocks under, so the blocks are
            # held before they can be retired
            self._blocks.hold(snapshot.blocks)
        try:
            counts = None
            if batch_samples > 0 and len(sids) > 1:
                counts = snapshot.sample_counts(sids)
                if self.read_cache.is_scan(int(counts.sum())):
                    snapshot = snapshot.as_scan()
            for batch in snapshot.batches(sids, batch_samples, counts):
                columns = snapshot.read(batch, start, end)
                if len(columns):
                    yield columns
                del columns  # not held while the next batch is read
        finally:
            self._blocks.let_go(snapshot.blocks)

    def _begin_recent(
        self,
        state: TenantState,
        sids: npt.NDArray[np.int64],
        start: int,
        end: int,
        *,
        whole: bool,
    ) -> _RecentRead | None:
        """A read of the series `sids` (ascending) from the rings of newest samples
        (recent.py), in label order; None when the rings do not hold all of it, or it is to
        be gathered `whole` and is too large for that. Under the state lock."""
        if start <= state.deleted_through:
            return None  # the rings may still hold samples retention deleted
        rows = self._recent.holding(sids, start, self._times.min_ts[sids])
        take = None if rows is None else self._recent.slots_to_take(rows, start, whole=whole)
        if rows is None or take is None:
            return None
        labels = {int(s): state.labels[int(s)] for s in sids.tolist()}
        # gathered in label order: no second gather to reorder
        order = np.asarray(state.label_order.order(sids, labels), dtype=np.int64)
        return _RecentRead(self._recent.begin(rows[order], start, end, take), sids[order], labels)

    def _read_recent(
        self, from_rings: _RecentRead, batch_samples: int
    ) -> Generator[SeriesColumns, None, npt.NDArray[np.int64] | None]:
        """Yields the read's parts of consecutive series in label order (one when
        `batch_samples` is 0, a read asked for whole), each gathered under the state lock
        on its own and let go once read. Returns None, or the series left to read from the
        head (ascending) where rings changed under the read (recent.RecentSamples.read_part)."""
        read = from_rings.rings
        part_samples, part_slots = 0, 0
        if batch_samples > 0:
            part_samples = min(recent.PART_SAMPLES, batch_samples)
            part_slots = recent.PART_SLOTS
        while not read.finished:
            first = read.done
            with self._state_lock:
                found = self._recent.read_part(read, part_samples, part_slots)
            if found is None:
                return np.sort(from_rings.sids[first:])
            columns = from_rings.columns(found, first)
            del found
            if len(columns):
                yield columns
            del columns  # not held while the next part is gathered
        return None

    def read_histograms(
        self,
        tenant: str,
        matcher_sets: Sequence[Sequence[Matcher]],
        start: int = INT64_MIN,
        end: int = INT64_MAX,
    ) -> list[HistogramSamples]:
        """Native histogram samples of the matching series in [start, end], per series in
        time order, the series sorted by labels; nothing (and no work) for a tenant that has
        never stored one."""
        state = self._tenants.get(tenant)
        if state is None or not state.histogram_series:
            return []
        sids = np.sort(self._matching(state, matcher_sets, start, end))
        with self._state_lock:
            wanted = np.array(
                [s for s in sids.tolist() if s in state.histogram_series], dtype=np.int64
            )
            if len(wanted) == 0:
                return []
            blocks = [
                b
                for b in state.blocks
                if b.histograms and b.max_time >= start and b.min_time <= end
            ]
            head = state.histograms.select(wanted, start, end)
            labels = {int(s): state.labels[int(s)] for s in wanted.tolist()}
            self._blocks.hold(blocks)
        try:
            parts = []
            for block in blocks:
                found = read_block_file(block.path, wanted)
                parts.append(found.where((found.timestamps >= start) & (found.timestamps <= end)))
        finally:
            self._blocks.let_go(blocks)
        columns = sorted_unique(concatenate([*parts, head]))
        out = []
        bounds = np.flatnonzero(np.r_[True, columns.sids[1:] != columns.sids[:-1], True])
        for first, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            out.append(
                HistogramSamples(
                    labels[int(columns.sids[first])],
                    columns.timestamps[first:stop],
                    columns.decoded(first, stop),
                )
            )
        out.sort(key=lambda series: series.labels)
        return out

    def tsdb_status(self, tenant: str, top: int = 10) -> dict[str, object]:
        state = self._tenants.get(tenant)
        with self._state_lock:
            return tsdb_status(state, top)


@dataclass
class _RecentRead:
    """A read from the rings in progress: its series in the order gathered, and their labels."""

    rings: RingRead
    sids: npt.NDArray[np.int64]  # in label order, as the rings are gathered
    labels: dict[int, Labels]

    def columns(self, found: Gathered, first: int) -> SeriesColumns:
        """The part `found` of the rings from `first` on as columns, series without samples
        in the window left out."""
        timestamps, values, counts = found
        kept = counts > 0
        bounds = np.zeros(int(kept.sum()) + 1, dtype=np.int64)
        np.cumsum(counts[kept], out=bounds[1:])
        series = self.sids[first : first + len(counts)][kept]
        return SeriesColumns([self.labels[s] for s in series.tolist()], bounds, timestamps, values)
