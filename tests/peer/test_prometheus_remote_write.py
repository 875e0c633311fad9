"""A real Prometheus (Debian package) scrapes a prometheus_client app and itself every second and
remote-writes everything to watchkeeper; then watchkeeper's `/api/v1/series`, `/api/v1/labels` and
`/api/v1/label/<name>/values` must give Prometheus' own answers for the same time ranges.

Timeline: phase A (the app has `app_gone_info{zone="a"}`), switch (it is removed and
`app_late_total{queue="late",shard="7"}` appears), phase B, then Prometheus is reloaded without
scrape jobs ("freeze"), so after the end-of-run staleness markers its data no longer changes,
and we wait until remote write has delivered all of it. The time windows compared are chosen
well away from the moments series start or stop, so their answers do not depend on timing.

Prometheus 2.42 answers `/api/v1/labels` and `/api/v1/label/<name>/values` from its in-memory
head without looking at each series' time range (any range that overlaps the head gives every
name in it). Where that matters (the windows inside the run), the exact answer is taken from
Prometheus' own `/api/v1/series` for the window: the names (values) of the series it lists.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.peer.conftest import Prometheus, ScrapeTarget

pytestmark = pytest.mark.peer

ALL = '{__name__=~".+"}'
SERIES_MATCHES: dict[str, list[str]] = {
    "everything": [ALL],
    "job-app": ['{job="app"}'],
    "app-not-GET": ['{__name__=~"app_.*",method!="GET"}'],
    "app-without-path": ['{job="app",path=""}'],
    "buckets-le-regex": ['{__name__="app_latency_seconds_bucket",le=~"0\\\\.1|\\\\+Inf"}'],
    "unicode-value": ['{path=~"/search.*ä.*"}'],
    "two-selectors": ["up", '{__name__=~"prometheus_tsdb_head_.*"}'],
    "negative-name-regex": [
        '{__name__!~"prometheus_.*|go_.*|process_.*|net_.*|promhttp_.*",job=~".+"}'
    ],
    "changing-series": ['{__name__=~"app_late_total|app_gone_info"}'],
    "no-such-series": ['{job="app",__name__="nothing_here"}'],
}
LABEL_MATCHES: dict[str, list[str] | None] = {
    "no-match": None,
    "job-app": ['{job="app"}'],
    "app-not-GET": ['{__name__=~"app_.*",method!="GET"}'],
    "changing-series": ["up", '{__name__=~"app_late_total|app_gone_info"}'],
}
LABEL_NAMES = ["__name__", "job", "instance", "method", "le", "path", "zone", "shard"]
WINDOWS = ["all-time", "wide", "before-start", "phase-a", "phase-b", "after-end"]


@dataclass
class Window:
    start: float | None
    end: float | None
    # Prometheus' labels / label values answers are exact for this window (it holds all of the
    # head or none of it).
    exact_labels: bool

    def params(self) -> dict[str, str]:
        params = {}
        if self.start is not None:
            params["start"] = f"{self.start:.3f}"
        if self.end is not None:
            params["end"] = f"{self.end:.3f}"
        return params


@dataclass
class Scenario:
    prometheus: httpx.Client
    watchkeeper: httpx.Client
    windows: dict[str, Window] = field(default_factory=dict)
    remote_write: dict[str, float] = field(default_factory=dict)

    def both(self, path: str, window: str, matches: Sequence[str] | None) -> tuple[Any, Any]:
        """(Prometheus' data, watchkeeper's data) for the same request."""
        params: dict[str, Any] = self.windows[window].params()
        if matches is not None:
            params["match[]"] = list(matches)
        return _data(self.prometheus, path, params), _data(self.watchkeeper, path, params)

    def prometheus_series(self, window: str, matches: Sequence[str] | None) -> list[dict[str, str]]:
        series, _ = self.both("/api/v1/series", window, matches or [ALL])
        return list(series)


def _data(client: httpx.Client, path: str, params: dict[str, Any]) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, f"{client.base_url}{path} {params}: {response.text}"
    body = response.json()
    assert body.get("status") == "success", body
    assert isinstance(body.get("data"), list), body
    return body["data"]


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Polls `condition` until it holds (True) or `timeout` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


def _instant(client: httpx.Client, query: str) -> float:
    """The value of a one-element PromQL instant query on Prometheus (0 if empty)."""
    result = client.get("/api/v1/query", params={"query": query}).json()["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def _series_set(data: list[dict[str, str]]) -> set[tuple[tuple[str, str], ...]]:
    return {tuple(sorted(labels.items())) for labels in data}


def _show(labels: tuple[tuple[str, str], ...]) -> str:
    return "{" + ", ".join(f"{name}={value!r}" for name, value in labels) + "}"


@pytest.fixture(scope="module")
def scenario(
    prometheus: Prometheus, scrape_target: ScrapeTarget, watchkeeper: Server
) -> Iterator[Scenario]:
    ready = time.time()
    with (
        httpx.Client(base_url=prometheus.url, timeout=30) as prom,
        httpx.Client(base_url=watchkeeper.url, timeout=30) as wk,
    ):
        # Phase A: a few scrapes of both jobs.
        assert _wait_until(
            lambda: (
                _instant(prom, 'count_over_time(up{job="app"}[10m])') >= 6
                and _instant(prom, 'count_over_time(up{job="prometheus"}[10m])') >= 6
            ),
            30,
        ), "Prometheus did not scrape both jobs 6 times in 30 s"
        switched = time.time()
        scrape_target.switch()
        # Phase B: a few scrapes with the late series.
        assert _wait_until(
            lambda: _instant(prom, "count_over_time(app_late_total[10m])") >= 6, 30
        ), "Prometheus did not scrape the app 6 times in 30 s after the switch"
        frozen = time.time()
        prometheus.freeze()

        # Remote write has caught up when the head stopped growing (after the end-of-run
        # staleness markers, written about two intervals after the freeze), nothing is pending
        # and the newest timestamp sent is the newest one appended.
        previous: list[float] = []

        def caught_up() -> bool:
            own = prometheus.own_metrics()
            previous.append(own["prometheus_tsdb_head_samples_appended_total"])
            return (
                time.time() > frozen + 4
                and len(previous) >= 2
                and previous[-1] == previous[-2]
                and own["prometheus_remote_storage_samples_pending"] == 0
                and own["prometheus_remote_storage_queue_highest_sent_timestamp_seconds"]
                >= own["prometheus_remote_storage_highest_timestamp_in_seconds"]
            )

        assert _wait_until(caught_up, 30), (
            f"Prometheus' remote write did not catch up in 30 s: {prometheus.own_metrics()}"
        )
        done = time.time()
        scenario = Scenario(prom, wk)
        scenario.remote_write = {
            name: value
            for name, value in prometheus.own_metrics().items()
            if name.startswith("prometheus_remote_storage_")
        }
        scenario.windows = {
            "all-time": Window(None, None, exact_labels=True),
            "wide": Window(ready - 3600, done + 3600, exact_labels=True),
            "before-start": Window(ready - 7200, ready - 3600, exact_labels=True),
            "phase-a": Window(ready + 1, switched - 2, exact_labels=False),
            "phase-b": Window(switched + 2.5, frozen - 1, exact_labels=False),
            "after-end": Window(done + 60, done + 3600, exact_labels=True),
        }
        # Watchkeeper may still be applying the last request: give it a moment to agree.
        expected = _series_set(scenario.prometheus_series("all-time", None))
        _wait_until(
            lambda: _series_set(scenario.both("/api/v1/series", "all-time", [ALL])[1]) == expected,
            15,
        )  # if they still differ, the tests show how
        yield scenario


def test_scenario_is_not_vacuous(scenario: Scenario) -> None:
    """The windows really differ in Prometheus: the comparisons below test time ranges."""

    def names(window: str) -> set[str]:
        return {s["__name__"] for s in scenario.prometheus_series(window, None)}

    assert {"app_gone_info", "app_late_total", "up"} <= names("all-time")
    assert "app_gone_info" in names("phase-a") and "app_late_total" not in names("phase-a")
    assert "app_late_total" in names("phase-b") and "app_gone_info" not in names("phase-b")
    assert names("before-start") == set() and names("after-end") == set()
    assert len(names("all-time")) > 100  # Prometheus' own metrics are in too
    for key, matches in SERIES_MATCHES.items():
        found = scenario.prometheus_series("all-time", matches)
        assert (key == "no-such-series") == (not found), (key, found)


def test_remote_write_had_no_failures(scenario: Scenario) -> None:
    counters = scenario.remote_write
    assert counters["prometheus_remote_storage_samples_total"] > 0, counters
    assert counters["prometheus_remote_storage_samples_failed_total"] == 0, counters


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("matches", list(SERIES_MATCHES.values()), ids=list(SERIES_MATCHES))
def test_series(scenario: Scenario, window: str, matches: list[str]) -> None:
    expected, got = scenario.both("/api/v1/series", window, matches)
    assert len(_series_set(got)) == len(got), f"duplicate series in watchkeeper's answer: {got}"
    missing = _series_set(expected) - _series_set(got)
    extra = _series_set(got) - _series_set(expected)
    assert not missing and not extra, (
        f"{window} {matches}: {len(expected)} series in Prometheus, {len(got)} in watchkeeper\n"
        f"only in Prometheus ({len(missing)}):\n  "
        + "\n  ".join(_show(s) for s in sorted(missing))
        + f"\nonly in watchkeeper ({len(extra)}):\n  "
        + "\n  ".join(_show(s) for s in sorted(extra))
    )


def _expected_names(
    scenario: Scenario, window: str, matches: list[str] | None, answer: list[str], name: str | None
) -> list[str]:
    """Prometheus' `answer` where it is exact, else the label names (or values of label `name`)
    of the series Prometheus lists for the window, which its answer must include."""
    if scenario.windows[window].exact_labels:
        return answer
    series = scenario.prometheus_series(window, matches)
    if name is None:
        exact = sorted({label for labels in series for label in labels})
    else:
        exact = sorted({labels[name] for labels in series if labels.get(name)})
    assert set(exact) <= set(answer), (exact, answer)
    return exact


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("matches", list(LABEL_MATCHES.values()), ids=list(LABEL_MATCHES))
def test_labels(scenario: Scenario, window: str, matches: list[str] | None) -> None:
    answer, got = scenario.both("/api/v1/labels", window, matches)
    expected = _expected_names(scenario, window, matches, answer, None)
    assert got == expected, (
        f"{window} {matches}: only in Prometheus {sorted(set(expected) - set(got))}, "
        f"only in watchkeeper {sorted(set(got) - set(expected))}; watchkeeper's: {got}"
    )


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("matches", [None, ['{job="app"}']], ids=["no-match", "job-app"])
@pytest.mark.parametrize("name", LABEL_NAMES)
def test_label_values(
    scenario: Scenario, window: str, matches: list[str] | None, name: str
) -> None:
    answer, got = scenario.both(f"/api/v1/label/{name}/values", window, matches)
    expected = _expected_names(scenario, window, matches, answer, name)
    assert got == expected, (
        f"{name} {window} {matches}: only in Prometheus {sorted(set(expected) - set(got))}, "
        f"only in watchkeeper {sorted(set(got) - set(expected))}; watchkeeper's: {got}"
    )
