"""The store tells listeners what each append made durable (only accepted samples, and the
series it created), and gives the newest sample of selected series."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from watchkeeper.model import Matcher, MatchOp, SeriesBatch, labels_from_dict
from watchkeeper.store import MetricsDB, StorageOptions
from watchkeeper.store.arrivals import Arrivals

T0 = 1_700_000_000_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetricsDB]:
    db = MetricsDB(tmp_path, StorageOptions(retention_ms=10**10, block_duration_ms=7_200_000))
    db.open()
    yield db
    db.close()


def _rows(name: str, values: dict[str, tuple[int, float]]) -> SeriesBatch:
    return SeriesBatch.from_samples(
        [
            (labels_from_dict({"__name__": name, "instance": i}), at, value)
            for i, (at, value) in values.items()
        ]
    )


def test_listeners_hear_accepted_samples_and_new_series_names(store: MetricsDB) -> None:
    heard: list[Arrivals] = []
    stop = store.listen_arrivals(heard.append)
    store.append("default", _rows("up", {"a": (T0, 1.0), "b": (T0, 1.0)}))
    # b's sample is out of order (refused); c is new, of another metric
    batch = SeriesBatch.from_samples(
        [
            (labels_from_dict({"__name__": "up", "instance": "a"}), T0 + 1000, 0.0),
            (labels_from_dict({"__name__": "up", "instance": "b"}), T0 - 1000, 5.0),
            (labels_from_dict({"__name__": "temp", "instance": "c"}), T0 + 1000, 21.5),
        ]
    )
    result = store.append("default", batch)
    assert result.rejected_count == 1
    first, second = heard
    assert first.tenant == "default" and len(first.series_ids) == 2
    assert [labels for _, labels in first.new_series] == [
        labels_from_dict({"__name__": "up", "instance": "a"}),
        labels_from_dict({"__name__": "up", "instance": "b"}),
    ]
    assert [sid for sid, _ in first.new_series] == first.series_ids.tolist()
    ((temp_id, temp),) = second.new_series
    assert temp == labels_from_dict({"__name__": "temp", "instance": "c"})
    assert int(second.series_ids[1]) == temp_id
    assert second.values.tolist() == [0.0, 21.5]
    assert second.timestamps.tolist() == [T0 + 1000, T0 + 1000]
    a_id = int(first.series_ids[0])
    assert int(second.series_ids[0]) == a_id
    # a listener that raises does not fail the append; one that stopped hears nothing more
    store.listen_arrivals(lambda arrivals: 1 / 0)
    stop()
    store.append("default", _rows("up", {"a": (T0 + 2000, 1.0)}))
    assert len(heard) == 2


def test_newest_samples_of_selected_series(store: MetricsDB) -> None:
    store.append("default", _rows("up", {"a": (T0, 1.0), "b": (T0, 1.0)}))
    store.append("default", _rows("up", {"a": (T0 + 15_000, 0.0)}))
    store.append("other", _rows("up", {"z": (T0, 7.0)}))
    newest = store.newest_samples("default", [Matcher("__name__", MatchOp.EQUAL, "up")])
    assert newest.timestamps.tolist() == [T0 + 15_000, T0]
    assert newest.values.tolist() == [0.0, 1.0]
    assert np.all(np.diff(newest.series_ids) > 0)
    only_b = store.newest_samples(
        "default",
        [Matcher("__name__", MatchOp.EQUAL, "up"), Matcher("instance", MatchOp.EQUAL, "b")],
    )
    assert only_b.values.tolist() == [1.0]
    assert len(store.newest_samples("nobody", [Matcher("__name__", MatchOp.EQUAL, "up")])) == 0
