"""The rings of each series' newest samples (store/recent.py): what they answer, what they
leave to the head and blocks, and that the store's reads give the same samples either way."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.store.test_tsdb import MINUTE, T0, _crash, _open
from watchkeeper.model import SeriesBatch, labels_from_dict, series_key
from watchkeeper.promql import parse_series_selector
from watchkeeper.promql.series_notation import STALE_NAN
from watchkeeper.store import MetricsDB, recent
from watchkeeper.store.blocks import write_block
from watchkeeper.store.ordering import INT64_MIN
from watchkeeper.store.recent import Gathered, RecentSamples, RingRead
from watchkeeper.store.types import SeriesColumns

NEVER = np.array([INT64_MIN], dtype=np.int64)  # a first sample the rings never held


def _write(
    ring: RecentSamples, sid: int, times: list[int], values: list[float] | None = None
) -> None:
    ring.write(
        np.full(len(times), sid, dtype=np.int64),
        np.array(times, dtype=np.int64),
        np.array(values if values is not None else [float(t) for t in times]),
    )


def _read(
    ring: RecentSamples, sids: list[int], start: int, end: int, first: list[int] | None = None
) -> list[list[int]] | None:
    """Each series' timestamps in [start, end], or None when the rings cannot tell."""
    firsts = np.array(first if first is not None else [INT64_MIN] * len(sids), dtype=np.int64)
    rows = ring.holding(np.array(sids, dtype=np.int64), start, firsts)
    take = None if rows is None else ring.slots_to_take(rows, start, whole=True)
    if rows is None or take is None:
        return None
    read = ring.begin(rows, start, end, take)
    found = ring.read_part(read)  # no limits: the whole read
    assert found is not None and read.finished
    return _series_times(found)


def _series_times(found: Gathered) -> list[list[int]]:
    times, values, counts = found
    assert times.tolist() == values.astype(np.int64).tolist()  # values travel with times
    bounds = np.r_[0, np.cumsum(counts)].tolist()
    return [times[a:b].tolist() for a, b in itertools.pairwise(bounds)]


def _parts(ring: RecentSamples, read: RingRead, samples: int, slots: int) -> list[list[int]]:
    """The counts of each part of `read`."""
    parts = []
    while not read.finished:
        found = ring.read_part(read, samples, slots)
        assert found is not None
        parts.append(found[2].tolist())
    return parts


def test_a_read_comes_whole_within_max_slots_or_in_parts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A read gathered whole (in one hold of the state lock) refuses more than MAX_SLOTS
    slots before gathering anything; a read in parts comes in parts of consecutive rings
    holding about PART_SAMPLES samples or gathered from about PART_SLOTS slots."""
    monkeypatch.setattr(recent, "GATHER_SLOTS", 8)  # one ring at a time
    ring = RecentSamples(depth=8, budget_bytes=1 << 20)
    for sid in (1, 2, 3):
        _write(ring, sid, [10, 20, 30])
    rows = ring.holding(np.array([3, 1, 2], dtype=np.int64), 15, NEVER.repeat(3))
    assert rows is not None
    assert ring.slots_to_take(rows, 15, whole=True) == 8  # whole rings (depth 8)
    monkeypatch.setattr(recent, "MAX_SLOTS", 23)
    assert ring.slots_to_take(rows, 15, whole=True) is None  # 3 rings x 8 slots
    assert ring.slots_to_take(rows, 15) == 8  # in parts: one part's slots at a time
    assert _parts(ring, ring.begin(rows, 15, 30, 8), 2, 0) == [[2]] * 3
    assert _parts(ring, ring.begin(rows, 15, 30, 8), 3, 0) == [[2, 2], [2]]  # 3 or more
    assert _parts(ring, ring.begin(rows, 15, 30, 8), 0, 16) == [[2, 2], [2]]  # 16 slots
    assert _parts(ring, ring.begin(rows, 15, 30, 8), 0, 0) == [[2, 2, 2]]


def test_a_read_in_parts_shows_the_rings_as_they_were_when_it_began(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Writes between parts: samples written since the read began are left out; a ring
    that overwrote samples older than the window still answers; one that overwrote a sample
    of the window, or was emptied or given back, ends the read from the rings (None)."""
    monkeypatch.setattr(recent, "GATHER_SLOTS", 8)  # one ring at a time
    ring = RecentSamples(depth=8, budget_bytes=1 << 20)
    for sid in (1, 2, 3, 4):
        _write(ring, sid, [10, 20, 30, 40, 50])

    def begun(start: int, end: int) -> RingRead:
        rows = ring.holding(np.arange(1, 5, dtype=np.int64), start, NEVER.repeat(4))
        assert rows is not None
        take = ring.slots_to_take(rows, start)
        assert take is not None
        return ring.begin(rows, start, end, take)

    read = begun(30, 100)
    first = ring.read_part(read, 1)
    assert first is not None and _series_times(first) == [[30, 40, 50]]
    # new samples, overwriting 10, 20 and 30 in the ring of series 2: 30 is in the window
    for sid in (2, 3):
        _write(ring, sid, [60, 70, 80, 90, 100, 110])
    assert ring.read_part(read, 1) is None
    assert read.done == 1  # the caller reads series 2, 3 and 4 from the head
    # the same writes, for a window from 40 on: only samples before it were overwritten
    read = begun(40, 100)
    _write(ring, 1, [60, 70, 80])
    _write(ring, 4, [60, 70, 80, 90, 100, 110])
    found = ring.read_part(read)
    assert found is not None
    assert _series_times(found) == [
        [40, 50],
        [*range(40, 101, 10)],
        [*range(40, 101, 10)],
        [40, 50],
    ]


@pytest.mark.parametrize("change", ["sample out of order", "given back"])
def test_a_ring_emptied_during_a_read_in_parts_ends_it(
    monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    monkeypatch.setattr(recent, "GATHER_SLOTS", 8)  # one ring at a time
    ring = RecentSamples(depth=8, budget_bytes=3 * 8 * 16)
    for sid in (1, 2, 3):
        _write(ring, sid, [10, 20, 30])
    rows = ring.holding(np.array([1, 2, 3], dtype=np.int64), 10, NEVER.repeat(3))
    assert rows is not None
    read = ring.begin(rows, 10, 30, 8)
    if change == "given back":
        ring.release([2])
        _write(ring, 9, [10, 20, 30])  # its ring, written as often as series 2's was
    else:
        _write(ring, 2, [5])
        _write(ring, 2, [40, 50, 60])
    assert ring.read_part(read, 1) is not None  # series 1
    assert ring.read_part(read, 1) is None
    assert read.done == 1


def test_a_short_window_gathers_the_newest_slots_alone() -> None:
    ring = RecentSamples(depth=64, budget_bytes=1 << 20)
    _write(ring, 1, list(range(0, 640, 10)))  # 64 samples, 0 .. 630
    rows = ring.holding(np.array([1], dtype=np.int64), 500, NEVER)
    assert rows is not None
    assert ring.slots_to_take(rows, 500) == 24  # the newest 24 reach back to 400
    assert ring.slots_to_take(rows, 300) == 64
    assert _read(ring, [1], 500, 630) == [list(range(500, 640, 10))]
    assert _read(ring, [1], 300, 630) == [list(range(300, 640, 10))]


def test_a_ring_answers_the_windows_it_holds_whole() -> None:
    ring = RecentSamples(depth=8, budget_bytes=1 << 20)
    _write(ring, 3, [10, 20, 30])
    _write(ring, 3, [40, 50])
    _write(ring, 5, [15, 25])
    assert _read(ring, [3, 5], 20, 45) == [[20, 30, 40], [25]]
    # in the order asked
    assert _read(ring, [5, 3], 10, 100, first=[15, 10]) == [[15, 25], [10, 20, 30, 40, 50]]
    # before the oldest sample held: only known to be empty if that is the series' first
    assert _read(ring, [3], 5, 30) is None
    assert _read(ring, [3], 5, 30, first=[10]) == [[10, 20, 30]]
    assert _read(ring, [3, 7], 20, 30) is None  # series 7 has no ring


def test_a_full_ring_keeps_the_newest_depth_samples() -> None:
    ring = RecentSamples(depth=4, budget_bytes=1 << 20)
    _write(ring, 1, [1, 2, 3])
    _write(ring, 1, [4, 5, 6])  # wraps around
    assert _read(ring, [1], 3, 6) == [[3, 4, 5, 6]]
    assert _read(ring, [1], 4, 5) == [[4, 5]]
    assert _read(ring, [1], 2, 6) is None  # sample 2 is gone from the ring
    _write(ring, 1, list(range(7, 20)))  # more than depth at once
    assert _read(ring, [1], 16, 19) == [[16, 17, 18, 19]]
    assert _read(ring, [1], 15, 19) is None


def test_long_windows_take_the_whole_ring() -> None:
    ring = RecentSamples(depth=200, budget_bytes=1 << 20)
    times = list(range(0, 3000, 15))  # 200 samples: more than one first gather
    _write(ring, 2, times)
    assert _read(ring, [2], 1500, 2985) == [[t for t in times if t >= 1500]]
    assert _read(ring, [2], 0, 2985) == [times]
    assert _read(ring, [2], -1, 2985) is None
    assert _read(ring, [2], -1, 2985, first=[0]) == [times]


def test_a_sample_out_of_order_empties_the_ring_until_samples_follow_in_order() -> None:
    ring = RecentSamples(depth=8, budget_bytes=1 << 20)
    _write(ring, 1, [10, 20, 30])
    _write(ring, 1, [25])  # admitted by the out-of-order window
    assert _read(ring, [1], 20, 40) is None
    _write(ring, 1, [28])  # still behind the newest seen (30)
    assert _read(ring, [1], 20, 40) is None
    _write(ring, 1, [40, 50])
    assert _read(ring, [1], 40, 60) == [[40, 50]]
    assert _read(ring, [1], 30, 60) is None  # 30 and the late 25 are not in the ring
    _write(ring, 1, [70, 60])  # both after the newest, out of order within one write
    assert _read(ring, [1], 40, 80) == [[40, 50, 60, 70]]
    _write(ring, 1, [70])  # equal to one seen: a duplicate is out of order too
    assert _read(ring, [1], 40, 80) is None
    _write(ring, 1, [80, 90, 90])
    assert _read(ring, [1], 80, 90) is None


def test_rings_stay_within_their_budget_and_are_given_back() -> None:
    ring = RecentSamples(depth=4, budget_bytes=3 * 4 * 16)  # three rings
    for sid in (1, 2, 3, 4):
        _write(ring, sid, [10, 20])
    assert ring.series == 3
    assert ring.nbytes <= 3 * 4 * 16
    assert _read(ring, [1, 2, 3], 10, 20) == [[10, 20]] * 3
    assert _read(ring, [4], 10, 20) is None
    ring.release([2])
    _write(ring, 4, [30])
    assert _read(ring, [4], 30, 30) == [[30]]
    assert _read(ring, [2], 10, 20) is None
    _write(ring, 2, [40])  # no ring left for it
    assert _read(ring, [2], 40, 40) is None
    assert RecentSamples(depth=0, budget_bytes=1 << 20).holding(NEVER, 0, NEVER) is None
    assert RecentSamples(depth=4, budget_bytes=0).holding(NEVER, 0, NEVER) is None


# --- the store: the same samples with and without the rings -----------------------------


def _batch(rows: list[tuple[str, int, float]]) -> SeriesBatch:
    return SeriesBatch.from_samples(
        [(labels_from_dict({"__name__": "m", "s": name}), T0 + t, v) for name, t, v in rows]
    )


def _without_rings(db: MetricsDB, selector: str, start: int, end: int) -> SeriesColumns:
    rings = db._recent.holding
    db._recent.holding = lambda *args: None  # type: ignore[method-assign]
    try:
        return db.read_columns("default", parse_series_selector(selector), start, end)
    finally:
        db._recent.holding = rings  # type: ignore[method-assign]


class Counting:
    """Counts the parts the rings gave."""

    def __init__(self, db: MetricsDB) -> None:
        self.answered = 0
        self.asked = 0
        self._read = db._recent.read_part
        db._recent.read_part = self  # type: ignore[method-assign]

    def __call__(self, *args: object, **kwargs: object) -> object:
        found = self._read(*args, **kwargs)  # type: ignore[arg-type]
        self.asked += 1
        self.answered += found is not None
        return found


def _joined(batches: list[SeriesColumns]) -> SeriesColumns:
    return SeriesColumns.of([series for batch in batches for series in batch.series()])


def _same_reads(db: MetricsDB, newest: int, counting: Counting) -> None:
    for selector in ("m", 'm{s=~"a|c"}', 'm{s="b"}'):
        for window in (MINUTE // 2, 2 * MINUTE, 5 * MINUTE, 30 * MINUTE, 200 * MINUTE):
            for end in range(T0, T0 + newest + 2 * MINUTE, 97_000):
                start = end - window + 1
                matchers = parse_series_selector(selector)
                want = _without_rings(db, selector, start, end)
                # whole, and in batches (of one series each from the rings, in label order)
                batches = list(db.read_column_batches("default", matchers, start, end, 1000))
                for got in (db.read_columns("default", matchers, start, end), _joined(batches)):
                    assert got.labels == want.labels, (selector, window, end)
                    assert got.bounds.tolist() == want.bounds.tolist(), (selector, window, end)
                    assert got.timestamps.tolist() == want.timestamps.tolist()
                    assert got.values.tobytes() == want.values.tobytes()


def test_store_reads_are_the_same_with_the_rings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Series at different intervals, staleness markers, samples out of order, a crash and a
    block cut: every read gives the same samples as the head and blocks do, and the rings
    answer many of them. The rings are gathered one at a time (GATHER_SLOTS), as the server
    gathers hundreds, and answer in parts of one ring each (PART_SAMPLES)."""
    monkeypatch.setattr(recent, "GATHER_SLOTS", 1)
    monkeypatch.setattr(recent, "PART_SAMPLES", 1)
    options = {
        "out_of_order_window_ms": 10 * MINUTE,
        "recent_samples_per_series": 16,
        "block_duration_ms": 10 * MINUTE,
    }
    db = _open(tmp_path, **options)
    rng = np.random.default_rng(7)
    newest = 0
    try:
        for step in range(60):
            t = step * 15_000
            rows = [("a", t, float(step)), ("b", t + 7, float(rng.integers(0, 5)))]
            if step % 2 == 0:
                rows.append(("c", t, STALE_NAN if step == 30 else float(step)))
            if step in (20, 41):
                rows.append(("a", t - 22_500, -1.0))  # out of order, within the window
            db.append("default", _batch(rows))
            if step == 35:
                db.append("default", _batch([("b", t - 20_000, 5.0)]))  # late, on its own
            newest = t
            if step in (20, 22, 35, 41):
                _same_reads(db, newest, Counting(db))  # while the rings hold the late samples
        counting = Counting(db)
        _same_reads(db, newest, counting)
        assert counting.answered >= 10  # short windows at the newest times
        _crash(db)
        db = _open(tmp_path, **options)  # the rings are rebuilt from the WAL
        counting = Counting(db)
        _same_reads(db, newest, counting)
        assert counting.answered >= 10
        db.append("default", _batch([("a", newest + 15_000, 99.0), ("d", newest, 1.0)]))
        db.compact(force=True)  # the samples the rings hold are in blocks now
        _same_reads(db, newest + 15_000, counting)
        # Reopened with everything in blocks, the WAL holds nothing to rebuild the rings from:
        # they start from the newest block's samples later than every other block's
        db.close()
        db = _open(tmp_path, **options)
        counting = Counting(db)
        _same_reads(db, newest + 15_000, counting)
        assert counting.answered >= 10
        db.append("default", _batch([("b", newest + 30_000, 7.0), ("a", newest + 45_000, 8.0)]))
        _same_reads(db, newest + 45_000, counting)  # and the samples after, as written
    finally:
        db.close()


def test_a_read_the_rings_fail_part_way_reads_the_rest_from_the_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appends between the parts of a read overwrite samples of its window in the rings of
    the series not read yet: those come from the head, and the read is whole and in order."""
    monkeypatch.setattr(recent, "GATHER_SLOTS", 1)
    monkeypatch.setattr(recent, "PART_SAMPLES", 1)  # a part a series
    db = _open(tmp_path, recent_samples_per_series=16, block_duration_ms=1000 * MINUTE)
    try:
        db.append("default", _batch([(s, i * 15_000, float(i)) for s in "abc" for i in range(16)]))
        start, end = T0 + 5 * 15_000, T0 + 15 * 15_000
        want = _without_rings(db, "m", start, end)
        counting = Counting(db)
        batches = db.read_column_batches("default", parse_series_selector("m"), start, end, 99)
        first = next(batches)
        assert first.labels == want.labels[:1]
        later = [(s, i * 15_000, 1.0) for s in "bc" for i in range(16, 32)]
        db.append("default", _batch(later))  # the rings of b and c hold only these now
        got = _joined([first, *batches])
        assert (counting.asked, counting.answered) == (2, 1)  # b and c from the head
        assert got.labels == want.labels
        assert got.bounds.tolist() == want.bounds.tolist()
        assert got.timestamps.tolist() == want.timestamps.tolist()
        assert got.values.tolist() == want.values.tolist()
    finally:
        db.close()


def test_rings_start_from_the_newest_block_only_after_every_other_block(
    tmp_path: Path,
) -> None:
    """A block overlapping the newest (here a sample written as a block of its own, as a
    backfill would): reopened, the rings take the newest block's samples after it only, so
    a window reaching back over it is read from the blocks, which hold it."""
    options = {"recent_samples_per_series": 16}
    db = _open(tmp_path, **options)
    try:
        db.append("default", _batch([("a", t, float(t)) for t in range(0, 20 * MINUTE, 15_000)]))
        db.compact(force=True)
        state = db._tenant("default")
        (sid,) = state.keys.values()
        late = np.array([T0 + 17 * MINUTE + 7_000], dtype=np.int64)
        parts = [(np.array([sid], dtype=np.int64), late, np.array([-1.0]))]
        assert write_block(state.directory, parts, lambda s: series_key(state.labels[s]))
        db.close()
        db = _open(tmp_path, **options)
        assert len(db._tenant("default").blocks) == 2
        counting = Counting(db)
        values = []
        for start in (16 * MINUTE + 30_000, 17 * MINUTE + 30_000):
            got = db.read_columns(
                "default", parse_series_selector("m"), T0 + start, T0 + 20 * MINUTE
            )
            want = _without_rings(db, "m", T0 + start, T0 + 20 * MINUTE)
            assert got.timestamps.tolist() == want.timestamps.tolist()
            values.append(got.values.tolist())
            assert values[-1] == want.values.tolist()
        assert -1.0 in values[0] and -1.0 not in values[1]
        assert (counting.asked, counting.answered) == (1, 1)  # the window after the late one
    finally:
        db.close()


def test_samples_retention_deleted_are_not_read_from_the_rings(tmp_path: Path) -> None:
    db = _open(tmp_path, retention_ms=30 * MINUTE)
    try:
        db.append("default", _batch([("old", 0, 1.0), ("old", MINUTE, 2.0)]))
        db.compact(force=True)
        selector = parse_series_selector('m{s="old"}')
        assert len(db.read_columns("default", selector, T0 - MINUTE, T0 + 2 * MINUTE)) == 1
        db.append("default", _batch([("old", 100 * MINUTE, 3.0)]))
        db.compact(force=True)
        assert db.apply_retention() == 1
        # The first block is gone, and with it the series' first two samples. Its ring still
        # holds them, with its first sample: it would answer, wrongly.
        assert len(db.read_columns("default", selector, T0 - MINUTE, T0 + 2 * MINUTE)) == 0
        found = db.read_columns("default", selector, T0 - MINUTE, T0 + 200 * MINUTE)
        assert found.timestamps.tolist() == [T0 + 100 * MINUTE]
    finally:
        db.close()


@pytest.mark.parametrize("budget", [0, 16 * 16])
def test_without_room_for_rings_reads_go_to_the_head(tmp_path: Path, budget: int) -> None:
    db = _open(tmp_path, recent_samples_per_series=16, recent_samples_bytes=budget)
    try:
        db.append("default", _batch([(name, t, 1.0) for name in "abc" for t in (0, 15_000)]))
        found = db.read_columns("default", parse_series_selector("m"), T0, T0 + MINUTE)
        assert [dict(ls)["s"] for ls in found.labels] == ["a", "b", "c"]
        assert found.bounds.tolist() == [0, 2, 4, 6]
        assert db._recent.series == (1 if budget else 0)
    finally:
        db.close()


def test_a_read_answered_by_the_rings_holds_no_lock_while_its_reader_works(
    tmp_path: Path,
) -> None:
    db = _open(tmp_path)
    try:
        db.append("default", _batch([(name, t, 1.0) for name in "ab" for t in (0, 15_000)]))
        counting = Counting(db)
        reading = db.read_column_batches("default", parse_series_selector("m"), T0, T0 + MINUTE, 0)
        assert len(next(reading)) == 2
        assert counting.answered == 1
        # appends go on while the reader works on the batch (another thread takes the lock)
        taken: list[bool] = []

        def take() -> None:
            taken.append(db._state_lock.acquire(timeout=2))
            if taken[-1]:
                db._state_lock.release()

        other = threading.Thread(target=take)
        other.start()
        other.join()
        assert taken == [True]
        assert list(reading) == []
    finally:
        db.close()
