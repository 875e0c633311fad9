"""What one target's scrapes store: Prometheus' label merging, limits, duplicates, explicit
timestamps and staleness markers, the same whether a body is parsed in full or read through
its remembered layout."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from watchkeeper.ingest.exposition import Format
from watchkeeper.ingest.scrape.config import ScrapeDefaults, parse_scrape_configs
from watchkeeper.ingest.scrape.series import (
    STALE_NAN_BITS,
    ScrapeError,
    ScrapeLimits,
    TargetSeries,
)
from watchkeeper.model import SeriesBatch

TARGET = (("instance", "host:9100"), ("job", "node"))


def _series(limits: ScrapeLimits | None = None, **fields: Any) -> TargetSeries:
    job = parse_scrape_configs([{"job_name": "node", **fields}], ScrapeDefaults(), None)[0]
    return TargetSeries(TARGET, job, limits or ScrapeLimits())


def _rows(batch: SeriesBatch) -> list[tuple[dict[str, str], int, float | str]]:
    rows = []
    for i, series in enumerate(batch.sample_series.tolist()):
        value = batch.values[i]
        shown: float | str = (
            "stale" if int(np.float64(value).view(np.uint64)) == STALE_NAN_BITS else float(value)
        )
        rows.append((dict(batch.labels_of(series)), int(batch.timestamps[i]), shown))
    return rows


def test_target_labels_win_and_exposed_ones_are_kept_as_exported() -> None:
    series = _series()
    outcome = series.scrape(
        b'm{job="app",instance="i",exported_job="x",a="1"} 5\n', Format.TEXT, 1000
    )
    ((labels, at, value),) = _rows(outcome.batch)
    assert labels == {
        "__name__": "m",
        "a": "1",
        "instance": "host:9100",
        "job": "node",
        "exported_instance": "i",
        "exported_job": "x",
        "exported_exported_job": "app",
    }
    assert (at, value) == (1000, 5.0)


def test_honor_labels_keeps_the_exposed_ones() -> None:
    series = _series(honor_labels=True)
    outcome = series.scrape(b'm{job="app"} 5\nn 1\n', Format.TEXT, 1000)
    rows = _rows(outcome.batch)
    assert rows[0][0] == {"__name__": "m", "job": "app", "instance": "host:9100"}
    assert rows[1][0] == {"__name__": "n", "job": "node", "instance": "host:9100"}


def test_metric_relabelling_drops_and_rewrites() -> None:
    series = _series(
        metric_relabel_configs=[
            {"source_labels": ["__name__"], "regex": "go_.*", "action": "drop"},
            {"source_labels": ["mode"], "target_label": "cpu_mode"},
            {"regex": "mode", "action": "labeldrop"},
        ]
    )
    body = b'go_goroutines 8\nnode_cpu{mode="idle"} 3\n'
    outcome = series.scrape(body, Format.TEXT, 1000)
    assert [r[0] for r in _rows(outcome.batch)] == [
        {"__name__": "node_cpu", "cpu_mode": "idle", "instance": "host:9100", "job": "node"}
    ]
    assert (outcome.scraped, outcome.post_relabel, outcome.series_added) == (2, 1, 1)
    again = series.scrape(body.replace(b"3", b"4"), Format.TEXT, 2000)
    assert (again.scraped, again.post_relabel, again.series_added) == (2, 1, 0)
    assert [r[2] for r in _rows(again.batch)] == [4.0]


def test_a_series_that_disappears_gets_a_staleness_marker() -> None:
    series = _series()
    series.scrape(b"a 1\nb 2\n", Format.TEXT, 1000)
    outcome = series.scrape(b"a 1\n", Format.TEXT, 2000)
    rows = _rows(outcome.batch)
    assert [(r[0]["__name__"], r[1], r[2]) for r in rows] == [
        ("a", 2000, 1.0),
        ("b", 2000, "stale"),
    ]
    assert outcome.stale == 1
    # it comes back: counted as added again
    assert series.scrape(b"a 1\nb 3\n", Format.TEXT, 3000).series_added == 1


def test_a_failed_scrape_marks_everything_stale_and_the_next_starts_afresh() -> None:
    series = _series()
    series.scrape(b"a 1\nb 2\n", Format.TEXT, 1000)
    rows = _rows(series.stale_all(2000))
    assert [(r[0]["__name__"], r[2]) for r in rows] == [("a", "stale"), ("b", "stale")]
    assert _rows(series.stale_all(3000)) == []  # nothing written since
    assert series.scrape(b"a 1\n", Format.TEXT, 4000).series_added == 1


def test_duplicates_keep_the_first_value_and_do_not_fail() -> None:
    outcome = _series().scrape(b"m 1\nm 2\nm 3\n", Format.TEXT, 1000)
    assert [r[2] for r in _rows(outcome.batch)] == [1.0]
    assert (outcome.scraped, outcome.post_relabel, outcome.series_added) == (3, 3, 1)
    assert outcome.duplicates == 2


def test_explicit_timestamps_are_honoured_and_not_marked_stale() -> None:
    series = _series()
    outcome = series.scrape(b"a 1 500\nb 2\n", Format.TEXT, 1000)
    assert [r[1] for r in _rows(outcome.batch)] == [500, 1000]
    gone = series.scrape(b"", Format.TEXT, 2000)
    assert [r[0]["__name__"] for r in _rows(gone.batch)] == ["b"]
    ignored = _series(honor_timestamps=False).scrape(b"a 1 500\n", Format.TEXT, 1000)
    assert [r[1] for r in _rows(ignored.batch)] == [1000]


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (ScrapeLimits(sample_limit=2), "sample limit exceeded (3 samples after relabelling"),
        (
            ScrapeLimits(label_limit=2),
            "label_limit exceeded (metric: m, number of labels: 3, limit: 2)",
        ),
        (
            ScrapeLimits(label_name_length_limit=4),
            "label_name_length_limit exceeded (metric: m, label name: __name__, length: 8, "
            "limit: 4)",
        ),
        (
            ScrapeLimits(label_value_length_limit=5),
            "label_value_length_limit exceeded (metric: m, label name: instance, value: "
            '"host:9100", length: 9, limit: 5)',
        ),
    ],
)
def test_limits_fail_the_whole_scrape(limits: ScrapeLimits, message: str) -> None:
    series = _series(limits)
    with pytest.raises(ScrapeError) as raised:
        series.scrape(b"m 1\nn 2\no 3\n", Format.TEXT, 1000)
    assert str(raised.value).startswith(message)
    if limits.sample_limit:
        assert (raised.value.scraped, raised.value.post_relabel) == (3, 3)


def test_the_remembered_layout_gives_what_a_full_parse_gives() -> None:
    body = b'# TYPE m counter\nm{a="1"} 1\nm{a="2"} 2\ngo_x 3\n'
    relabelled = {
        "metric_relabel_configs": [
            {"source_labels": ["__name__"], "regex": "go_.*", "action": "drop"}
        ]
    }
    remembering = _series(**relabelled)
    remembering.scrape(body, Format.TEXT, 1000)
    later = body.replace(b"} 1", b"} 10").replace(b"} 2", b"} 20")
    fast = remembering.scrape(later, Format.TEXT, 2000)
    assert not fast.parsed  # read through the layout
    fresh = _series(**relabelled)
    full = fresh.scrape(later, Format.TEXT, 2000)
    assert full.parsed
    assert _rows(fast.batch) == _rows(full.batch)
    assert list(fast.batch.keys) == list(full.batch.keys)


def test_utf8_and_legacy_name_validation() -> None:
    body = b'{"my.metric"} 1\n'
    assert _rows(_series().scrape(body, Format.TEXT, 1000).batch)[0][0]["__name__"] == ("my.metric")
    legacy = _series(metric_name_validation_scheme="legacy")
    with pytest.raises(ScrapeError, match="invalid metric name or label names"):
        legacy.scrape(body, Format.TEXT, 1000)
