import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchkeeper.store import headchunks, merge
from watchkeeper.store.headchunks import INT64_MIN, HeadChunk, freeze
from watchkeeper.store.tenant import TenantState


def _chunks(rows: list[tuple[int, int, float]], size: int) -> list[HeadChunk]:
    out = []
    for at in range(0, len(rows), size):
        part = rows[at : at + size]
        out.append(
            HeadChunk(
                np.array([r[0] for r in part], dtype=np.int64),
                np.array([r[1] for r in part], dtype=np.int64),
                np.array([r[2] for r in part], dtype=np.float64),
            )
        )
    return out


def _name(sid: int) -> str:
    return f"metric_{sid % 3}"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 30),
            st.integers(-(2**40), 2**40),
            st.floats(allow_nan=True, allow_infinity=True),
        ),
        min_size=1,
        max_size=120,
    ),
    chunk_size=st.integers(1, 40),
    wanted=st.sets(st.integers(-2, 33), max_size=12),
)
def test_frozen_chunks_give_back_every_sample(
    monkeypatch: pytest.MonkeyPatch, rows, chunk_size: int, wanted: set[int]
) -> None:
    monkeypatch.setattr(headchunks, "SEGMENT_ROWS", 7)
    chunks = _chunks(rows, chunk_size)
    frozen = freeze(chunks, _name)
    # storage order: by metric name, then id; each series in arrival order
    series = np.array([r[0] for r in rows], dtype=np.int64)
    order = sorted(range(len(rows)), key=lambda i: (_name(rows[i][0]), rows[i][0]))
    expect_s = series[order]
    expect_t = np.array([r[1] for r in rows], dtype=np.int64)[order]
    expect_v = np.array([r[2] for r in rows], dtype=np.float64)[order]
    got_s, got_t, got_v = frozen.arrays()
    assert got_s.tolist() == expect_s.tolist()
    assert got_t.tolist() == expect_t.tolist()
    assert got_v.view(np.int64).tolist() == expect_v.view(np.int64).tolist()
    part_s, part_t, part_v = frozen.arrays(np.array(sorted(wanted), dtype=np.int64))
    keep = np.isin(expect_s, list(wanted))
    assert part_s.tolist() == expect_s[keep].tolist()
    assert part_t.tolist() == expect_t[keep].tolist()
    assert part_v.view(np.int64).tolist() == expect_v[keep].view(np.int64).tolist()
    assert (frozen.min_time, frozen.max_time) == (int(expect_t.min()), int(expect_t.max()))


def test_realistic_samples_compress_well() -> None:
    rng = np.random.default_rng(7)
    chunks = []
    for step in range(60):
        ids = rng.permutation(2000).astype(np.int64)
        ts = 1_700_000_000_000 + step * 15_000 + rng.integers(0, 5, 2000)
        values = np.round(1000 + step * 3.5 + ids, 2)
        chunks.append(HeadChunk(ids, ts, values))
    frozen = freeze(chunks)
    assert frozen.nbytes / len(frozen) < 6  # against 24 bytes per raw sample


def test_freezing_many_samples_slices_them_by_arrival_time() -> None:
    # ten series sampled each second for 100 s, arriving in time order
    rows = [(s, t * 1000, float(s * 1000 + t)) for t in range(100) for s in range(10)]
    slices = headchunks.freeze_slices(_chunks(rows, 64), 250)
    assert [len(f) for f in slices] == [250, 250, 250, 250]
    # each slice covers its own stretch of time, so a recent window decodes one of them
    assert [(f.min_time, f.max_time) for f in slices] == [
        (0, 24_000),
        (25_000, 49_000),
        (50_000, 74_000),
        (75_000, 99_000),
    ]
    got = sorted(
        (int(s), int(t), float(v)) for f in slices for s, t, v in zip(*f.arrays(), strict=True)
    )
    assert got == sorted(rows)


def test_raw_run_holds_each_sample_once_in_segments_views_never_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(headchunks, "RAW_SEGMENT_ROWS", 4096)
    rows = [(s, t * 1000, float(s * 1000 + t)) for t in range(3000) for s in range(3)]
    run = headchunks.RawRun()
    held = [run.append(chunk) for chunk in _chunks(rows, 50)]
    early = held[0]
    before = [a.copy() for a in early.arrays()]
    # the chunks handed back are the same samples, in views of the segments
    assert [r for c in held for r in zip(*(a.tolist() for a in c.arrays()), strict=True)] == rows
    assert [a.tolist() for a in early.arrays()] == [a.tolist() for a in before]
    views = run.views()
    # 1 Ki rows, then doubling up to the cap; a chunk that does not fit starts the next one
    assert [len(v) for v in views] == [1000, 2000, 4050, 1950]
    assert (
        list(
            zip(
                *(np.concatenate([v.arrays()[i] for v in views]).tolist() for i in range(3)),
                strict=True,
            )
        )
        == rows
    )
    assert (views[0].min_time, views[-1].max_time) == (0, 2_999_000)
    # a read from t=2,000 s on skips the segments that end before it
    assert [len(v) for v in run.views(2_000_000)] == [4050, 1950]
    assert headchunks.RawRun().views() == []


def test_samples_arriving_during_a_freeze_join_a_slice_instead_of_making_a_tiny_one() -> None:
    # 1,017 samples for slices of 250: the 17 that came on top are spread over the slices;
    # a chunk of 17 would cost every read of its minutes a chunk's whole fixed cost
    rows = [(t % 10, t * 100, float(t)) for t in range(1017)]
    slices = headchunks.freeze_slices(_chunks(rows, 64), 250)
    assert [len(f) for f in slices] == [254, 254, 254, 255]
    assert [len(f) for f in headchunks.freeze_slices(_chunks(rows[:300], 64), 250)] == [300]
    assert [len(f) for f in headchunks.freeze_slices(_chunks(rows[:100], 64), 250)] == [100]
    got = sorted(
        (int(s), int(t), float(v)) for f in slices for s, t, v in zip(*f.arrays(), strict=True)
    )
    assert got == sorted(rows)


def test_a_raw_run_after_a_freeze_starts_at_the_segment_size_reached(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setattr(headchunks, "RAW_SEGMENT_ROWS", 4096)
    state = TenantState(name="t", directory=tmp_path)
    rows = [(s, t * 1000, float(t)) for t in range(4000) for s in range(3)]
    for chunk in _chunks(rows[:9000], 50):
        state.add_chunk(chunk)
    start, raw = state.raw_run()
    assert state.replace_raw(start, raw, headchunks.freeze_slices(raw, 10_000))
    for chunk in _chunks(rows[9000:], 50):
        state.add_chunk(chunk)
    # one full-size segment, not 1 Ki, 2 Ki, ... again: a read of the newest minutes
    # decodes one chunk instead of a ladder of small ones
    assert [len(c) for c in state.read_chunks(INT64_MIN)] == [9000, 3000]
    assert [c.frozen for c in state.read_chunks(INT64_MIN)] == [True, False]


@pytest.mark.parametrize("span", [40, 70_000, 5_000_000_000, 2**40])
def test_rows_group_by_series_stably_whatever_the_span_of_ids(span: int) -> None:
    # one radix pass under 2**16, two under 2**32, a plain stable sort above
    rng = np.random.default_rng(span)
    series = rng.integers(0, span, 20_000, dtype=np.int64) + 5
    series[::7] = series[0]  # many rows of one series, to check arrival order within it
    assert (
        headchunks._order_by_series(series).tolist() == np.argsort(series, kind="stable").tolist()
    )
    rows = headchunks.SeriesRows(series)
    wanted = np.unique(np.r_[rng.choice(series, 25), series[0], span + 10, -1])
    expected = np.concatenate([np.flatnonzero(series == sid) for sid in wanted])
    assert rows.rows(wanted).tolist() == expected.tolist()
    assert rows.rows(np.array([span + 10])).tolist() == []


def test_reads_find_the_series_of_full_raw_segments_through_their_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(headchunks, "RAW_SEGMENT_ROWS", 1024)
    rng = np.random.default_rng(7)
    # out-of-order times and repeated (series, time) pairs, as late and re-sent writes bring
    rows = [
        (int(s), int(t), float(k))
        for k, (s, t) in enumerate(
            zip(rng.integers(0, 40, 5000), rng.integers(0, 300, 5000), strict=True)
        )
    ]
    run = headchunks.RawRun()
    for chunk in _chunks(rows, 100):
        run.append(chunk)
    views = run.views()
    # every segment but the growing last one is full, and indexed
    assert [v.by_series is not None for v in views] == [True] * (len(views) - 1) + [False]
    assert run.views()[0].by_series is views[0].by_series  # built once per segment
    # a lookup table covering every id of the rows, and one that ends before some of them
    for wanted in ([0, 3, 17, 39, 41], [0, 3, 17]):
        ids = np.array(wanted, dtype=np.int64)
        table = np.zeros(ids[-1] + 1, dtype=bool)
        table[ids] = True
        for view in views:
            got = merge.select(view, ids, table)
            keep = np.isin(view.series, ids)
            expected = [a[keep] for a in view.arrays()]
            if view.by_series is not None:
                # grouped by series, each in arrival order: what a filter gives, stably sorted
                order = np.argsort(expected[0], kind="stable")
                expected = [a[order] for a in expected]
            assert [a.tolist() for a in got] == [a.tolist() for a in expected]
