import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchkeeper.store import headchunks
from watchkeeper.store.headchunks import HeadChunk, freeze


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


def test_raw_run_views_never_change_as_chunks_arrive() -> None:
    rows = [(s, t * 1000, float(s * 1000 + t)) for t in range(3000) for s in range(3)]
    chunks = _chunks(rows, 50)
    run = headchunks.RawRun(chunks[:2])
    early = run.view()
    assert early is not None and len(early) == 100
    before = (early.series.copy(), early.timestamps.copy(), early.values.copy())
    for chunk in chunks[2:]:  # grows the buffer several times
        run.append(chunk)
    assert [a.tolist() for a in early.arrays()] == [a.tolist() for a in before]
    whole = run.view()
    assert whole is not None and len(whole) == len(rows)
    assert list(zip(*(a.tolist() for a in whole.arrays()), strict=True)) == rows
    assert (whole.min_time, whole.max_time) == (0, 2_999_000)
    assert headchunks.RawRun().view() is None


def test_raw_run_views_leave_out_leading_rows_older_than_asked() -> None:
    # arrival order is nearly time order: one late sample (t=5) arrives after t=40
    times = [10, 20, 30, 40, 5, 50, 60]
    chunk = HeadChunk(
        np.arange(len(times), dtype=np.int64),
        np.array(times, dtype=np.int64),
        np.arange(len(times), dtype=np.float64),
    )
    run = headchunks.RawRun([chunk])
    since_25 = run.view(25)
    assert since_25 is not None
    # the rows before the first one at or after 25 go; the late one stays for the caller's filter
    assert since_25.timestamps.tolist() == [30, 40, 5, 50, 60]
    assert (since_25.min_time, since_25.max_time) == (5, 60)  # min_time: a lower bound
    assert run.view(61) is None
    whole = run.view()
    assert whole is not None and whole.timestamps.tolist() == times
