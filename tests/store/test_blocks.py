from pathlib import Path

import numpy as np

from watchkeeper.store.blocks import BlockReader, list_blocks, read_block_series, write_block


def test_block_round_trip_with_series_and_time_filters(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    series = np.repeat(np.arange(1, 41, dtype=np.int64), 50)
    timestamps = np.tile(1_700_000_000_000 + np.arange(50, dtype=np.int64) * 15_000, 40)
    timestamps += rng.integers(0, 7, len(timestamps))
    values = np.where(
        rng.random(len(series)) < 0.8,
        np.round(rng.random(len(series)) * 1e4, 2),
        rng.random(len(series)),
    )
    values[::97] = np.nan
    parts = [
        (series[a : a + 300], timestamps[a : a + 300], values[a : a + 300])
        for a in range(0, 2000, 300)
    ]
    block = write_block(tmp_path, iter(parts), lambda sid: f"key{sid}".encode())
    assert block is not None and block.samples == 2000 and block.series == 40
    assert list_blocks(tmp_path) == [block]
    found = read_block_series(block)
    assert found.keys[:2] == [b"key1", b"key2"]
    reader = BlockReader()
    wanted = np.array([3, 17, 40], dtype=np.int64)
    start, end = int(timestamps[10]), int(timestamps[30])
    [(got_s, got_t, got_v)] = list(reader.parts([block], wanted, start, end))
    keep = np.isin(series, wanted) & (timestamps >= start) & (timestamps <= end)
    assert got_s.tolist() == series[keep].tolist()
    assert got_t.tolist() == timestamps[keep].tolist()
    assert got_v.view(np.int64).tolist() == values[keep].view(np.int64).tolist()
    reader.close()
