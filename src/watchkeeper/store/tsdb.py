"""The embedded metrics store: WAL + in-memory head + Parquet blocks, per tenant.

Write path (`append`): series keys resolve to ids, every sample is judged (ordering.judge) in
one pass over arrays, accepted columns go to the WAL as one record, and the call returns once
that record is fsynced and applied to the head. Reads see only durable data. The head is cut
into blocks by sample time, like Prometheus' head (`compact`); after a cut, a checkpoint of the
remaining head replaces the older WAL segments. On open, blocks are listed, the newest
checkpoint and the WAL after it are replayed; samples a block already holds are skipped, so a
crash between writing a block and checkpointing duplicates nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from watchkeeper.model import (
    Labels,
    MetricMetadata,
    SeriesBatch,
    format_labels,
    labels_from_key,
    series_key,
)
from watchkeeper.store import checkpoint, records
from watchkeeper.store.arrivals import ArrivalListener, ArrivalListeners, Arrivals
from watchkeeper.store.block_set import BlockSet
from watchkeeper.store.blocks import BlockMeta, read_block_series, write_block
from watchkeeper.store.exemplars import Exemplar, ExemplarRing
from watchkeeper.store.headchunks import HeadChunk, after_cut, concatenated, freeze_slices
from watchkeeper.store.heap import release_free_memory
from watchkeeper.store.histograms import (
    HistogramColumns,
    HistogramHead,
    histogram_bits,
    sorted_unique,
    stored_hints,
    with_hint_byte,
)
from watchkeeper.store.merge import already_stored, sorted_parts
from watchkeeper.store.ordering import INT64_MIN, VERDICT_REASON, Verdict, judge
from watchkeeper.store.read_cache import ReadCache
from watchkeeper.store.recent import RecentSamples
from watchkeeper.store.series_index import name_of
from watchkeeper.store.series_times import SeriesTimes
from watchkeeper.store.tenant import TenantState
from watchkeeper.store.tsdb_reads import StoreReads
from watchkeeper.store.types import AppendResult, StorageOptions
from watchkeeper.store.wal import WriteAheadLog

log = logging.getLogger(__name__)


class MetricsDB(StoreReads):
    def __init__(
        self,
        directory: Path,
        options: StorageOptions,
        observe_fsync: Callable[[float], None] | None = None,
    ) -> None:
        self.directory = directory
        self.options = options
        self._blocks_dir = directory / "blocks"
        self.wal = WriteAheadLog(directory / "wal", options.wal_segment_bytes, observe_fsync)
        self._tenants: dict[str, TenantState] = {}
        self._times = SeriesTimes()
        # each series' newest sample that reads can see (applied to the head): what
        # read_newest answers from; `_times` also counts samples not yet durable
        self._visible = SeriesTimes()
        self._next_sid = 1
        self._append_lock = threading.Lock()
        self._state_lock = threading.RLock()
        self._compaction_lock = threading.Lock()
        self.read_cache = ReadCache(options.read_cache_bytes)
        self._recent = RecentSamples(
            options.recent_samples_per_series, options.recent_samples_bytes
        )
        self._blocks = BlockSet(options, self.read_cache)
        # Floors raised by a compaction in progress: appends below them are out of bounds.
        self._cut_floor: dict[str, int] = {}
        self._freeze_wanted = threading.Event()
        self._closing = False
        self._freezer_thread: threading.Thread | None = None
        self.arrivals = ArrivalListeners()

    # --- lifecycle ---------------------------------------------------------------------

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._blocks_dir.mkdir(exist_ok=True)
        for tenant_dir in sorted(p for p in self._blocks_dir.iterdir() if p.is_dir()):
            state = self._tenant(tenant_dir.name)
            for block in self._blocks.open(tenant_dir):
                self._load_block_series(state, block)
                state.blocks.append(block)
            self._recent_from_blocks(state)
        checkpoint_seq = self._replay_checkpoint()
        for payload in self.wal.replay(checkpoint_seq):
            self._replay(payload)
        self.wal.start()
        self._freezer_thread = threading.Thread(
            target=self._freezer, name="head-freezer", daemon=True
        )
        self._freezer_thread.start()
        release_free_memory()  # what replaying the WAL used and let go
        log.info(
            "metrics store open: %d tenants, %d series, %d head samples",
            len(self._tenants),
            self.series_count(),
            sum(t.head_samples for t in self._tenants.values()),
        )

    def close(self) -> None:
        """Wait for a compaction or freeze in progress (they need the WAL), then stop."""
        with self._compaction_lock:
            self._closing = True
        self._freeze_wanted.set()
        if self._freezer_thread is not None:
            self._freezer_thread.join()
        self.wal.close()
        self._blocks.close()

    # --- writing -----------------------------------------------------------------------

    def append(self, tenant: str, batch: SeriesBatch) -> AppendResult:
        """Store a batch; returns once every appended sample is durable. Samples breaking the
        ordering rules or limits are left out and counted by reason in the result."""
        result = AppendResult()
        floats, histograms = len(batch), len(batch.histograms)
        if floats == 0 and histograms == 0 and not batch.metadata and not batch.exemplars:
            return result
        with self._append_lock:
            state = self._tenant(tenant)
            sids, new_series = self._resolve_series(state, batch, result)
            result.series_ids, result.generation = sids, state.dropped
            # float samples, then histogram samples: one timeline per series for the rules
            rows_series = batch.sample_series
            timestamps = batch.timestamps
            bits = batch.values.view(np.int64)
            encoded: list[bytes] = []
            if histograms:
                encoded = [h.encode() for h in batch.histograms]
                rows_series = np.concatenate([rows_series, batch.histogram_series])
                timestamps = np.concatenate([timestamps, batch.histogram_timestamps])
                hash_bits = np.array([histogram_bits(e) for e in encoded], dtype=np.int64)
                bits = np.concatenate([bits, hash_bits])
            sample_sids = sids[rows_series]
            known = sample_sids >= 0
            self._times.ensure(int(sample_sids.max(initial=0)))
            safe = np.where(known, sample_sids, 0)
            prior_max = np.where(known, self._times.max_ts[safe], INT64_MIN)
            verdict = judge(
                sample_sids,
                timestamps,
                bits,
                prior_max,
                self._times.last_bits[safe],
                *self._bounds(state),
            )
            verdict[~known] = -1
            # Older than the series' newest: refused, or admitted by the out-of-order window.
            # Either way, one already stored bit for bit is a retry, not new data.
            older = (timestamps < prior_max) & (
                (verdict == Verdict.OUT_OF_ORDER) | (verdict == Verdict.APPEND)
            )
            older[floats:] = False
            late = np.flatnonzero(older)
            if len(late):
                stored = self._stored_identical(
                    state, sample_sids[late], timestamps[late], bits[late]
                )
                verdict[late[stored]] = Verdict.RESENT
            # the out-of-order window admits float samples only
            late_histograms = (timestamps < prior_max) & (verdict == Verdict.APPEND)
            late_histograms[:floats] = False
            verdict[late_histograms] = Verdict.OUT_OF_ORDER
            accept = verdict == Verdict.APPEND
            result.resent = int(np.count_nonzero(verdict == Verdict.RESENT))
            for code, reason in VERDICT_REASON.items():
                hit = np.flatnonzero(verdict == code)
                if len(hit):
                    j = int(hit[0])
                    labels = batch.labels_of(int(rows_series[j]))
                    example = f"series {format_labels(labels)} timestamp {timestamps[j]}"
                    result.rejected[reason] = (len(hit), example)
            self._times.record(sample_sids[accept], timestamps[accept], bits[accept])
            float_accept = accept[:floats]
            acc_sids = sample_sids[:floats][float_accept]
            acc_ts = batch.timestamps[float_accept]
            acc_vals = batch.values[float_accept]
            stored_histograms = HistogramColumns.empty()
            if histograms:
                taken = np.flatnonzero(accept[floats:])
                hist_sids = sample_sids[floats:][taken]
                kept = stored_hints(
                    [batch.histograms[k] for k in taken.tolist()],
                    state.histograms.newest,
                    hist_sids.tolist(),
                )
                # the encoding already made, with the stored hint put in its place
                stored_histograms = HistogramColumns.of(
                    hist_sids,
                    batch.histogram_timestamps[taken],
                    [
                        with_hint_byte(encoded[k], h.counter_reset_hint)
                        for k, h in zip(taken.tolist(), kept, strict=True)
                    ],
                )
            result.appended = len(acc_sids) + len(stored_histograms)
            futures = []
            if new_series:
                payload = records.encode_series(tenant, [(sid, key) for sid, key, _ in new_series])
                created = [(sid, labels) for sid, _, labels in new_series]
                futures.append(self.wal.submit(payload, lambda: self._apply_series(state, created)))
            if len(acc_sids):
                payload = records.encode_samples(tenant, acc_sids, acc_ts, acc_vals)
                chunk = HeadChunk(acc_sids, acc_ts, acc_vals)
                futures.append(self.wal.submit(payload, lambda: self._apply_chunk(state, chunk)))
            if len(stored_histograms):
                payload = records.encode_histograms(tenant, stored_histograms)
                futures.append(
                    self.wal.submit(
                        payload, lambda: self._apply_histograms(state, stored_histograms)
                    )
                )
            if batch.exemplars:
                kept_exemplars = state.exemplars.add(
                    Exemplar(int(sids[i]), labels, value, at)
                    for i, labels, value, at in batch.exemplars
                    if sids[i] >= 0
                )
                if kept_exemplars:
                    payload = records.encode_exemplars(tenant, kept_exemplars)
                    futures.append(self.wal.submit(payload, lambda: None))
            changed = [m for m in batch.metadata if state.metadata.get(m.metric) != m]
            if changed:
                payload = records.encode_metadata(tenant, changed)
                futures.append(
                    self.wal.submit(payload, lambda: self._apply_metadata(state, changed))
                )
        for future in futures:
            future.result()
        if self.arrivals and (result.appended or new_series):
            if len(stored_histograms):
                # a histogram is no float: as NaN, no comparison of a rule passes it
                nan_bits = bits[floats:][accept[floats:]]
                acc_sids = np.concatenate([acc_sids, stored_histograms.sids])
                acc_ts = np.concatenate([acc_ts, stored_histograms.timestamps])
                acc_vals = np.concatenate([acc_vals, nan_bits.view(np.float64)])
            made = tuple((sid, labels) for sid, _, labels in new_series)
            self.arrivals.tell(Arrivals(tenant, acc_sids, acc_ts, acc_vals, made))
        return result

    def listen_arrivals(self, listener: ArrivalListener) -> Callable[[], None]:
        """Call `listener` after every append with what it made durable (arrivals.py);
        returns the function that stops it."""
        return self.arrivals.add(listener)

    def _resolve_series(
        self, state: TenantState, batch: SeriesBatch, result: AppendResult
    ) -> tuple[npt.NDArray[np.int64], list[tuple[int, bytes, Labels]]]:
        hint = batch.series_hint
        if (
            hint is not None
            and hint[0] == state.dropped
            and len(hint[1]) == len(batch.keys)
            and int(hint[1].min(initial=0)) >= 0
        ):
            return hint[1].copy(), []
        get = state.keys.get
        sids = np.array([get(k, -1) for k in batch.keys], dtype=np.int64)
        new_series: list[tuple[int, bytes, Labels]] = []
        missing = np.flatnonzero(sids < 0)
        if len(missing) == 0:
            return sids, new_series
        limit = self.options.max_series_per_tenant
        for i in missing.tolist():
            key = batch.keys[i]
            known = state.keys.get(key)  # the same series twice in one request
            if known is not None:
                sids[i] = known
                continue
            if len(state.keys) >= limit:
                reason = f"limit limits.max_series_per_tenant ({limit}) exceeded"
                count, example = result.rejected.get(reason, (0, ""))
                samples = int(np.count_nonzero(batch.sample_series == i))
                example = example or f"series {format_labels(batch.labels_of(i))}"
                result.rejected[reason] = (count + samples, example)
                continue
            sid = self._next_sid
            self._next_sid += 1
            state.keys[key] = sid
            sids[i] = sid
            new_series.append((sid, key, batch.labels_of(i)))
        return sids, new_series

    def _stored_identical(
        self,
        state: TenantState,
        sids: npt.NDArray[np.int64],
        ts: npt.NDArray[np.int64],
        bits: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.bool_]:
        """Which older-than-newest samples are already in the head, bit for bit: a retried
        request is then a no-op, not an out-of-order error (Prometheus would answer 400)."""
        low, high = int(ts.min()), int(ts.max())
        with self._state_lock:
            chunks = [c for c in state.chunks if c.max_time >= low and c.min_time <= high]
        return already_stored(chunks, sids, ts, bits)

    def _bounds(self, state: TenantState) -> tuple[int, int | None]:
        """Oldest timestamp accepted in order, and through the out-of-order window (or None)."""
        floor = max(state.blocks_max_time + 1, self._cut_floor.get(state.name, INT64_MIN))
        head_max = state.head_max_time
        in_order = floor
        if head_max != INT64_MIN:
            in_order = max(floor, head_max - self.options.block_duration_ms // 2)
        window = self.options.out_of_order_window_ms
        if window <= 0:
            return in_order, None
        ooo = floor if head_max == INT64_MIN else max(floor, head_max - window)
        return in_order, ooo

    def _apply_series(self, state: TenantState, created: list[tuple[int, Labels]]) -> None:
        with self._state_lock:
            for sid, labels in created:
                state.add_series(sid, labels)

    def _apply_chunk(self, state: TenantState, chunk: HeadChunk) -> None:
        with self._state_lock:
            state.add_chunk(chunk)
            self._show(chunk.series, chunk.timestamps, chunk.values)
            if state.raw_samples >= self.options.freeze_samples:
                self._freeze_wanted.set()

    def _show(
        self,
        sids: npt.NDArray[np.int64],
        timestamps: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
    ) -> None:
        """Float samples now in the head, for the reads that do not search it: each series'
        newest (read_newest) and its ring of recent samples (recent.py)."""
        self._visible.record(sids, timestamps, values.view(np.int64))
        self._recent.write(sids, timestamps, values)

    def _apply_histograms(self, state: TenantState, columns: HistogramColumns) -> None:
        with self._state_lock:
            state.add_histograms(columns)
            # read_newest leaves histogram series to the full read; their times still count
            self._visible.record(
                columns.sids, columns.timestamps, np.zeros(len(columns), dtype=np.int64)
            )

    def _freezer(self) -> None:
        """Background thread: compress raw head chunks once enough have piled up."""
        while True:
            self._freeze_wanted.wait()
            self._freeze_wanted.clear()
            if self._closing:
                return
            for state in list(self._tenants.values()):
                try:
                    self._freeze(state)
                except Exception:
                    log.exception("freezing head chunks of tenant %s failed", state.name)

    def _freeze(self, state: TenantState) -> None:
        with self._compaction_lock:  # compaction and retention rewrite the chunk list
            if self._closing:
                return
            with self._state_lock:
                if state.raw_samples < self.options.freeze_samples:
                    return
                start, raw = state.raw_run()
            frozen = freeze_slices(raw, self.options.freeze_samples, name_of(state.labels))
            with self._state_lock:
                state.replace_raw(start, raw, frozen)

    def _apply_metadata(self, state: TenantState, entries: list[MetricMetadata]) -> None:
        with self._state_lock:
            for entry in entries:
                state.metadata[entry.metric] = entry

    def _tenant(self, name: str) -> TenantState:
        state = self._tenants.get(name)
        if state is None:
            with self._state_lock:
                state = self._tenants.setdefault(
                    name,
                    TenantState(
                        name=name,
                        directory=self._blocks_dir / name,
                        exemplars=ExemplarRing(self.options.max_exemplars),
                    ),
                )
        return state

    # --- replay ------------------------------------------------------------------------

    def _load_block_series(self, state: TenantState, block: BlockMeta) -> None:
        found = read_block_series(block)
        for sid, key in zip(found.series.tolist(), found.keys, strict=True):
            if key not in state.keys:
                state.keys[key] = sid
                state.add_series(sid, labels_from_key(key))
            self._next_sid = max(self._next_sid, sid + 1)
            state.series_in_blocks.add(sid)
        state.histogram_series.update(found.histogram_series.tolist())
        if len(found.series):
            self._times.ensure(int(found.series.max()))
            np.minimum.at(self._times.min_ts, found.series, found.min_times)
            np.maximum.at(self._times.max_ts, found.series, found.max_times)

    def _recent_from_blocks(self, state: TenantState) -> None:
        """Start the rings of recent samples (recent.py) from the newest block, before the WAL
        is replayed. The WAL gives only samples after the newest block, so after a restart the
        rings would otherwise hold less than the hour dashboards read until they filled again,
        and those reads would decode the head. Only samples later than every other block's
        are taken: a series' samples there are all in this block, and the replay's all come
        after them. As many of the block's series as the rings have room for."""
        recent = self._recent
        room = recent.max_rows - recent.series
        if room <= 0 or not state.blocks:
            return
        newest = max(state.blocks, key=lambda b: b.max_time)
        after = max((b.max_time for b in state.blocks if b is not newest), default=INT64_MIN)
        for sids, timestamps, values in self._blocks.reader.newest_samples(
            newest, recent.depth, after, room
        ):
            recent.write(sids, timestamps, values)

    def _replay_checkpoint(self) -> int:
        seq, payloads = checkpoint.newest(self.directory)
        for payload in payloads:
            self._replay(payload)
        return seq

    def _replay(self, payload: bytes) -> None:
        record = records.decode(payload)
        state = self._tenant(record.tenant)
        if isinstance(record, records.SeriesRecord):
            for sid, key in record.entries:
                state.keys[key] = sid
                state.add_series(sid, labels_from_key(key))
                self._next_sid = max(self._next_sid, sid + 1)
        elif isinstance(record, records.SamplesRecord):
            # Samples at or before the newest block's end were compacted already.
            keep = record.timestamps > state.blocks_max_time
            sids, ts, vals = record.series[keep], record.timestamps[keep], record.values[keep]
            self._times.record(sids, ts, vals.view(np.int64))
            self._show(sids, ts, vals)
            state.add_chunk(HeadChunk(sids, ts, vals))
            if state.raw_samples >= self.options.freeze_samples:
                self._freeze(state)
        elif isinstance(record, records.HistogramsRecord):
            columns = record.columns.where(record.columns.timestamps > state.blocks_max_time)
            if len(columns):
                hash_bits = [histogram_bits(columns.encoded(i)) for i in range(len(columns))]
                self._times.record(
                    columns.sids, columns.timestamps, np.array(hash_bits, dtype=np.int64)
                )
                self._visible.record(
                    columns.sids, columns.timestamps, np.zeros(len(columns), dtype=np.int64)
                )
                state.add_histograms(columns)
                for i, sid in enumerate(columns.sids.tolist()):
                    state.histograms.newest[sid] = columns.histogram(i)
        elif isinstance(record, records.ExemplarsRecord):
            state.exemplars.add(record.entries)
        else:
            for entry in record.entries:
                state.metadata[entry.metric] = entry

    # --- compaction, checkpoints, retention -------------------------------------------------

    def compact(self, force: bool = False) -> list[BlockMeta]:
        """Cut head data into blocks. Normally only whole block ranges that have fallen half a
        block behind the newest sample; with `force`, everything in the head. Then merge aged
        blocks into longer ones (block_merge.py). Returns the blocks written: those cut, then
        those merged."""
        written: list[BlockMeta] = []
        with self._compaction_lock:
            if self._closing:
                return written
            for state in list(self._tenants.values()):
                while (end := self._next_cut(state, force)) is not None:
                    block = self._cut_block(state, end)
                    if block is None:
                        break
                    written.append(block)
            if written:
                self._checkpoint()
            for state in list(self._tenants.values()):
                written += self._blocks.merge_aged(state, self._state_lock)
            self._blocks.delete_unused()
        if written:
            release_free_memory()  # cutting and merging let go of hundreds of MiB of arrays
        return written

    def _next_cut(self, state: TenantState, force: bool) -> int | None:
        if state.head_empty:
            return None
        if force:
            return state.head_max_time + 1
        size = self.options.block_duration_ms
        if state.head_max_time - state.head_min_time < size * 3 // 2:
            return None
        end = (state.head_min_time // size) * size + size
        keep_open = max(size // 2, self.options.out_of_order_window_ms)
        return end if end <= state.head_max_time - keep_open else None

    def _cut_block(self, state: TenantState, end: int) -> BlockMeta | None:
        with self._append_lock:
            self._cut_floor[state.name] = end
            self.wal.barrier().result()  # everything accepted below `end` is in the head now
        with self._state_lock:
            chunks = list(state.chunks)
            histogram_parts = list(state.histograms.parts)
        labels = state.labels
        cut_histograms, kept_histograms = HistogramHead(histogram_parts).split(end)
        block = write_block(
            state.directory,
            sorted_parts(chunks, end, name_of(state.labels)),
            lambda sid: series_key(labels[sid]),
            histograms=sorted_unique(cut_histograms),
        )
        if block is None:
            self._cut_floor.pop(state.name, None)
            return None
        in_block = read_block_series(block).series.tolist()
        # Outside the lock, as decoding and freezing take a while: the chunk list only grows
        # meanwhile (freezing waits for the compaction lock this holds).
        kept = after_cut(chunks, end, self.options.freeze_samples, name_of(state.labels))
        with self._state_lock:
            state.blocks.append(block)
            state.series_in_blocks.update(in_block)
            remaining = kept + [c.after(end) for c in state.chunks[len(chunks) :]]
            later = state.histograms.parts[len(histogram_parts) :]
            newest = state.head_max_time
            state.reset_head()
            for chunk in remaining:
                state.add_chunk(chunk)
            histogram_head = state.histograms
            state.histograms = HistogramHead(newest=histogram_head.newest)
            for part in [kept_histograms.all(), *later]:
                state.add_histograms(part.where(part.timestamps >= end))
            # An emptied head still remembers its newest sample: the ordering bounds use it.
            state.head_max_time = max(newest, state.head_max_time)
        self._cut_floor.pop(state.name, None)
        log.info("cut block %s: %d samples, %d series", block.path, block.samples, block.series)
        return block

    def _checkpoint(self) -> None:
        """Replace WAL segments by one file holding the head as it is now. Runs under the
        compaction lock, so the chunk lists only grow meanwhile."""
        with self._append_lock:
            seq = self.wal.cut().result()  # everything before is applied to the head
            with self._state_lock:
                cut = [
                    (
                        state,
                        list(state.chunks),
                        list(state.labels),
                        list(state.metadata.values()),
                        state.exemplars.all(),
                        state.histograms.all(),
                    )
                    for state in self._tenants.values()
                ]
        payloads = []
        for state, chunks, known, metadata, exemplars, histograms in cut:
            sids, ts, vals = concatenated(chunks)
            in_head = set(np.unique(sids).tolist()) | set(np.unique(histograms.sids).tolist())
            unused = [s for s in known if s not in in_head and s not in state.series_in_blocks]
            # Series written to since the cut stay, and their records must survive the old
            # segments: no new series record is written for a series already known.
            in_head.update(self._drop_unused_series(state, unused, len(chunks)))
            with self._state_lock:
                entries = [(sid, series_key(state.labels[sid])) for sid in sorted(in_head)]
            if entries:
                payloads.append(records.encode_series(state.name, entries))
            if len(ts):
                payloads.append(records.encode_samples(state.name, sids, ts, vals))
            if len(histograms):
                payloads.append(records.encode_histograms(state.name, histograms))
            if metadata:
                payloads.append(records.encode_metadata(state.name, metadata))
            if exemplars:
                payloads.append(records.encode_exemplars(state.name, exemplars))
        checkpoint.write(self.directory, seq, payloads)
        self.wal.remove_segments_before(seq)

    def _drop_unused_series(
        self, state: TenantState, unused: list[int], cut_chunks: int
    ) -> list[int]:
        """Forget series that had no samples in the head or any block at the checkpoint (all
        their samples were rejected, or retention removed them), unless written to since;
        returns those kept for that reason."""
        if not unused:
            return []
        # Appends are held off and the ones already accepted applied, so "written to since"
        # is exact: a series may be in use again by now.
        with self._append_lock:
            self.wal.barrier().result()
            with self._state_lock:
                since = set()
                for chunk in state.chunks[cut_chunks:]:
                    since.update(np.unique(chunk.arrays()[0]).tolist())
                # histograms written since the checkpoint's snapshot (the head's now)
                since.update(state.histograms.series())
                dropped = {sid for sid in unused if sid not in since}
                for sid in dropped:
                    state.drop_series(sid)
                self._recent.release(sorted(dropped))
                state.histograms.forget(dropped)
                state.histogram_series -= dropped
                state.exemplars.forget(dropped)
        return [sid for sid in unused if sid in since]

    def refresh_label_orders(self) -> int:
        """Rank each tenant's series in label order (label_order.py), for the series created
        since the last refresh; returns how many were new. Sorting runs outside the lock, on
        a copy of the series taken under it."""
        added = 0
        with self._state_lock:
            states = list(self._tenants.values())
        for state in states:
            with self._state_lock:
                if state.series_changes == state.label_order.changes:
                    continue
                labels = state.labels.copy()
                changes = state.series_changes
            added += state.label_order.refresh(labels, changes)
        return added

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Delete blocks entirely older than the retention period before the tenant's newest
        sample (or `now_ms`); returns how many were deleted."""
        deleted = 0
        with self._compaction_lock:
            if self._closing:
                return 0
            for state in list(self._tenants.values()):
                reference = state.newest_time if now_ms is None else now_ms
                if reference == INT64_MIN:
                    continue
                cutoff = reference - self.options.retention_ms
                expired = [b for b in state.blocks if b.max_time < cutoff]
                if not expired:
                    continue
                with self._state_lock:
                    state.blocks = [b for b in state.blocks if b not in expired]
                    state.deleted_through = max(
                        state.deleted_through, *(b.max_time for b in expired)
                    )
                self._blocks.retire(expired)  # deleted once no read holds them
                deleted += len(expired)
                self._reload_block_series(state)
            if deleted:
                self._checkpoint()
            self._blocks.delete_unused()
        return deleted

    def _reload_block_series(self, state: TenantState) -> None:
        remaining: set[int] = set()
        for block in state.blocks:
            found = read_block_series(block)
            remaining.update(found.series.tolist())
        with self._state_lock:
            state.series_in_blocks = remaining
