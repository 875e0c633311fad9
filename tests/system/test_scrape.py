"""The real server scraping real targets on loopback: an app instrumented with the real
prometheus_client library, and targets that fail in each way a target fails. Every failure
is `up 0` with its reason on the targets page, and the loop goes on."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import start_http_server as start_metrics_server

from tests.conftest import Server, free_port

pytestmark = pytest.mark.timeout(120)


def wait_for(check: Callable[[], Any], timeout: float = 15.0, every: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy; fail with its last answer."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"not true after {timeout}s; last answer: {last!r}")


class App:
    """A process's own metrics, as an app instrumented with prometheus_client exposes them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "shop_requests", "Requests served.", ["path", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "shop_latency_seconds", "Request latency.", ["path"], registry=self.registry
        )
        self.queue = Gauge("shop_queue_depth", "Jobs waiting.", ["queue"], registry=self.registry)
        self.checkouts = Counter("shop_checkouts", "Checkouts.", registry=self.registry)
        self.port = free_port()
        self.server, self.thread = start_metrics_server(
            self.port, addr="127.0.0.1", registry=self.registry
        )

    def close(self) -> None:
        self.server.shutdown()


class Misbehaving(http.server.ThreadingHTTPServer):
    """Targets that go wrong: slow, garbage, too many samples, an error status, gzip."""

    def __init__(self) -> None:
        self.port = free_port()
        super().__init__(("127.0.0.1", self.port), _Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        text = "text/plain; version=0.0.4; charset=utf-8"
        if self.path == "/slow":
            time.sleep(2.5)
            self._answer(200, text, b"late 1\n")
        elif self.path == "/garbage":
            self._answer(200, text, b"<html>this is not { an exposition\n")
        elif self.path == "/many":
            self._answer(200, text, b"".join(b"many_%d 1\n" % i for i in range(50)))
        elif self.path == "/missing":
            self._answer(404, "text/plain", b"no such page\n")
        elif self.path == "/gzip":
            body = gzip.compress(b"# TYPE zipped gauge\nzipped 42\n")
            self._answer(200, text, body, {"Content-Encoding": "gzip"})
        elif self.path == "/blank-type":
            self._answer(200, "", b"blank 1\n")
        else:
            self._answer(404, "text/plain", b"")

    def _answer(
        self, status: int, content_type: str, body: bytes, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the scraper gave up
            self.wfile.write(body)


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    served = App()
    yield served
    served.close()


@pytest.fixture(scope="module")
def misbehaving() -> Iterator[Misbehaving]:
    server = Misbehaving()
    yield server
    server.shutdown()


def _config(app: App, misbehaving: Misbehaving, down_port: int, sd_file: Path) -> str:
    bad = f"127.0.0.1:{misbehaving.port}"
    return f"""
scrape:
  interval: 1s
  timeout: 1s
scrape_configs:
  - job_name: shop
    static_configs:
      - targets: ["127.0.0.1:{app.port}"]
        labels: {{team: checkout}}
  - job_name: down
    static_configs: [{{targets: ["127.0.0.1:{down_port}"]}}]
  - job_name: slow
    metrics_path: /slow
    static_configs: [{{targets: ["{bad}"]}}]
  - job_name: garbage
    metrics_path: /garbage
    static_configs: [{{targets: ["{bad}"]}}]
  - job_name: many
    metrics_path: /many
    sample_limit: 20
    static_configs: [{{targets: ["{bad}"]}}]
  - job_name: too_big
    metrics_path: /many
    body_size_limit: 100B
    static_configs: [{{targets: ["{bad}"]}}]
  - job_name: missing
    metrics_path: /missing
    static_configs: [{{targets: ["{bad}"]}}]
  - job_name: zipped
    metrics_path: /gzip
    static_configs: [{{targets: ["{bad}"]}}]
  - job_name: blank
    metrics_path: /blank-type
    static_configs: [{{targets: ["{bad}"]}}]
  - job_name: files
    file_sd_configs: [{{files: ["{sd_file}"]}}]
"""


@pytest.fixture(scope="module")
def scraping(
    app: App, misbehaving: Misbehaving, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("scrape")
    sd_file = root / "targets.json"
    sd_file.write_text("[]")
    server = Server(root / "data", _config(app, misbehaving, free_port(), sd_file)).start()
    server.sd_file = sd_file  # type: ignore[attr-defined]
    yield server
    server.stop()


def _targets(server: Server, **params: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{server.url}/api/v1/targets", params=params, timeout=10).json()
    assert answer["status"] == "success"
    return answer["data"]["activeTargets"]  # type: ignore[no-any-return]


def _by_job(server: Server) -> dict[str, dict[str, Any]]:
    return {t["scrapePool"]: t for t in _targets(server)}


def _query(server: Server, query: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{server.url}/api/v1/query", params={"query": query}, timeout=10).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]  # type: ignore[no-any-return]


def _values(server: Server, query: str) -> dict[str, float]:
    return {
        ",".join(f"{k}={v}" for k, v in sorted(r["metric"].items()) if k != "__name__"): float(
            r["value"][1]
        )
        for r in _query(server, query)
    }


def test_an_app_instrumented_with_prometheus_client_is_scraped(app: App, scraping: Server) -> None:
    app.requests.labels("/cart", "200").inc(7)
    app.latency.labels("/cart").observe(0.3)
    app.queue.labels("emails").set(3)
    wait_for(lambda: _query(scraping, 'shop_requests_total{code="200"} == 7'))
    (series,) = _query(scraping, "shop_requests_total")
    assert series["metric"] == {
        "__name__": "shop_requests_total",
        "code": "200",
        "instance": f"127.0.0.1:{app.port}",
        "job": "shop",
        "path": "/cart",
        "team": "checkout",
    }
    buckets = _values(scraping, 'shop_latency_seconds_bucket{path="/cart"}')
    assert buckets[f"instance=127.0.0.1:{app.port},job=shop,le=0.5,path=/cart,team=checkout"] == 1
    assert _values(scraping, "shop_queue_depth")  # the gauge is there too
    target = _by_job(scraping)["shop"]
    assert (target["health"], target["lastError"]) == ("up", "")
    # every sample the library writes is counted, and the scrape series carry target labels
    exposed = generate_latest(app.registry).decode()
    lines = [line for line in exposed.splitlines() if line and not line.startswith("#")]
    scraped = wait_for(lambda: _values(scraping, 'scrape_samples_scraped{job="shop"}') or None)
    assert list(scraped.values()) == [len(lines)]
    assert _values(scraping, 'up{job="shop"}') == {
        f"instance=127.0.0.1:{app.port},job=shop,team=checkout": 1.0
    }
    assert _values(scraping, 'scrape_duration_seconds{job="shop"} < 1')


def test_metadata_from_the_app(app: App, scraping: Server) -> None:
    wait_for(lambda: _query(scraping, "shop_requests_total"))
    metadata = httpx.get(f"{scraping.url}/api/v1/metadata", timeout=10).json()["data"]
    # prometheus_client answers our Accept header with OpenMetrics, where a counter's family
    # is named without its _total, as Prometheus then records it
    assert metadata["shop_requests"] == [
        {"type": "counter", "help": "Requests served.", "unit": ""}
    ]
    assert metadata["shop_latency_seconds"][0]["type"] == "histogram"
    per_target = httpx.get(
        f"{scraping.url}/api/v1/targets/metadata",
        params={"match_target": '{job="shop"}', "metric": "shop_queue_depth"},
        timeout=10,
    ).json()["data"]
    assert per_target == [
        {
            "target": {"instance": f"127.0.0.1:{app.port}", "job": "shop", "team": "checkout"},
            "type": "gauge",
            "help": "Jobs waiting.",
            "unit": "",
        }
    ]


@pytest.mark.parametrize(
    ("job", "reason"),
    [
        ("down", "connection refused"),
        ("slow", "context deadline exceeded"),
        ("garbage", "line 1: "),
        ("many", "sample limit exceeded (50 samples after relabelling, sample_limit 20)"),
        ("missing", "server returned HTTP status 404 Not Found"),
        ("too_big", "body size limit exceeded (body_size_limit 100 bytes)"),
        ("blank", "non-compliant scrape target sending blank Content-Type"),
    ],
)
def test_a_failing_target_is_down_with_its_reason(scraping: Server, job: str, reason: str) -> None:
    target = wait_for(lambda: (t := _by_job(scraping)[job])["health"] != "unknown" and t)
    assert target["health"] == "down"
    assert reason in target["lastError"]
    wait_for(lambda: _values(scraping, f'up{{job="{job}"}}'))
    assert list(_values(scraping, f'up{{job="{job}"}}').values()) == [0.0]
    # none of the failed body was stored
    assert _query(scraping, '{__name__=~"many_.*|late"}') == []
    # and the loop keeps going
    first = target["lastScrape"]
    wait_for(lambda: _by_job(scraping)[job]["lastScrape"] != first, timeout=8)


def test_a_gzip_body_is_read(scraping: Server) -> None:
    wait_for(
        lambda: (
            _values(scraping, "zipped")
            == {
                "instance="
                + _by_job(scraping)["zipped"]["labels"]["instance"]
                + ",job=zipped": 42.0
            }
        )
    )


def test_targets_page_shape(scraping: Server) -> None:
    target = wait_for(lambda: (t := _by_job(scraping)["shop"])["health"] == "up" and t)
    assert set(target) == {
        "discoveredLabels",
        "labels",
        "scrapePool",
        "scrapeUrl",
        "globalUrl",
        "lastError",
        "lastScrape",
        "lastScrapeDuration",
        "health",
        "scrapeInterval",
        "scrapeTimeout",
    }
    assert target["scrapeUrl"].endswith("/metrics")
    assert target["discoveredLabels"]["__scrape_interval__"] == "1s"
    assert (target["scrapeInterval"], target["scrapeTimeout"]) == ("1s", "1s")
    assert target["lastScrape"].endswith("Z")
    pools = httpx.get(f"{scraping.url}/api/v1/scrape_pools", timeout=10).json()["data"]
    assert pools["scrapePools"] == sorted(pools["scrapePools"])
    assert "shop" in pools["scrapePools"]
    assert [t["scrapePool"] for t in _targets(scraping, scrapePool="slow")] == ["slow"]
    assert _targets(scraping, state="dropped") == []


def test_exemplars_are_stored_and_queried(app: App, scraping: Server) -> None:
    """prometheus_client writes exemplars in OpenMetrics, which our Accept header asks for."""
    app.checkouts.inc(exemplar={"trace_id": "4bf92f3577b34da6"})

    def found() -> list[dict[str, Any]]:
        answer = httpx.get(
            f"{scraping.url}/api/v1/query_exemplars",
            params={"query": "rate(shop_checkouts_total[1m])", "start": "0"},
            timeout=10,
        ).json()
        assert answer["status"] == "success", answer
        return answer["data"]  # type: ignore[no-any-return]

    (series,) = wait_for(found)
    assert series["seriesLabels"]["__name__"] == "shop_checkouts_total"
    assert series["seriesLabels"]["job"] == "shop"
    (exemplar,) = series["exemplars"]  # exposed on every scrape, kept once
    assert exemplar["labels"] == {"trace_id": "4bf92f3577b34da6"}
    assert exemplar["value"] == "1"
    time.sleep(2.5)  # more scrapes expose the same exemplar
    assert len(found()[0]["exemplars"]) == 1


def test_a_series_that_goes_away_is_stale_at_once(app: App, scraping: Server) -> None:
    app.queue.labels("sms").set(5)
    wait_for(lambda: _query(scraping, 'shop_queue_depth{queue="sms"}'))
    app.queue.remove("sms")
    # gone from instant queries at the next scrape, not five minutes later
    wait_for(lambda: not _query(scraping, 'shop_queue_depth{queue="sms"}'), timeout=8)
    assert _query(scraping, 'shop_queue_depth{queue="emails"}')


def test_file_sd_targets_come_and_go(app: App, scraping: Server) -> None:
    sd_file: Path = scraping.sd_file  # type: ignore[attr-defined]
    address = f"127.0.0.1:{app.port}"
    sd_file.write_text(f'[{{"targets": ["{address}"], "labels": {{"env": "canary"}}}}]')
    wait_for(
        lambda: (
            _values(scraping, 'up{job="files"}')
            == {f"env=canary,instance={address},job=files": 1.0}
        )
    )
    target = _by_job(scraping)["files"]
    assert target["discoveredLabels"]["__meta_filepath"] == str(sd_file)
    sd_file.write_text("[]")
    # the target stops, and its series are marked stale
    wait_for(lambda: "files" not in _by_job(scraping))
    wait_for(lambda: not _query(scraping, 'up{job="files"}'), timeout=8)


def test_reload_applies_new_jobs_and_refuses_a_broken_file(
    app: App, tmp_path: Path, start_server: Callable[..., Server]
) -> None:
    config = f"""
scrape:
  interval: 1s
scrape_configs:
  - job_name: first
    static_configs: [{{targets: ["127.0.0.1:{app.port}"]}}]
"""
    server = start_server(config=config)
    config_path = server.data_dir.parent / f"{server.data_dir.name}-config.yml"
    wait_for(lambda: _values(server, "up") == {f"instance=127.0.0.1:{app.port},job=first": 1})

    config_path.write_text(config.replace("job_name: first", "job_name: second"))
    answer = httpx.post(f"{server.url}/-/reload", timeout=10)
    assert (answer.status_code, answer.text) == (200, "")
    assert [t["scrapePool"] for t in _targets(server)] == ["second"]
    wait_for(lambda: _values(server, 'up{job="second"}'))

    config_path.write_text(config.replace("scrape_configs:", "scrape_configs: [oops"))
    answer = httpx.post(f"{server.url}/-/reload", timeout=10)
    assert answer.status_code == 500
    assert answer.text.startswith("failed to reload config: ")
    assert "not valid YAML" in answer.text
    assert [t["scrapePool"] for t in _targets(server)] == ["second"]  # still running

    config_path.write_text(config.replace("job_name: first", "job_name: third"))
    assert server.process is not None
    server.process.send_signal(signal.SIGHUP)
    wait_for(lambda: [t["scrapePool"] for t in _targets(server)] == ["third"])
    wait_for(lambda: _values(server, 'up{job="third"}'))
    # the samples scraped under each configuration are all still there
    jobs = {r["metric"]["job"] for r in _query(server, "count_over_time(up[1h])")}
    assert jobs == {"first", "second", "third"}
