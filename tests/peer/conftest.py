"""Fixtures for peer tests: watchkeeper, a real Prometheus (Debian package) and a scrape target,
all on loopback ports, each with its log kept in a file that is printed when a test fails."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    start_http_server,
)
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ManagedProcess, Server, free_port

__all__ = ["Prometheus", "ScrapeTarget", "free_port"]

# The logs of the processes the peer tests started, shown with the first failure after each
# has been written to (the later failures name the files).
LOGS: dict[str, Path] = {}
SHOWN: set[Path] = set()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for name, path in LOGS.items():
            if path in SHOWN:
                text = f"(shown with an earlier failure) {path}"
            else:
                SHOWN.add(path)
                text = path.read_text(errors="replace")[-20_000:] if path.exists() else "(none)"
            report.sections.append((f"{name} log {path}", text))
    return report


def _require(command: str) -> str:
    """The path of `command`; skips the test when it is missing, fails under CI=true."""
    path = shutil.which(command)
    if path is None:
        message = (
            f"`{command}` is not installed (Debian package `{command}`; `make peers` installs it "
            "as root)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}, but CI=true: the peer install is broken")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return _require("prometheus")


@pytest.fixture(scope="module")
def watchkeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A watchkeeper server without self-monitoring, so it holds only what it is sent."""
    server = Server(tmp_path_factory.mktemp("watchkeeper") / "data")
    LOGS["watchkeeper"] = server.log_path
    try:
        server.start()
        yield server
    finally:
        server.stop()


class ScrapeTarget:
    """A prometheus_client registry served over HTTP, whose series change once, on `switch()`:
    `app_gone_info` (the only series with label `zone`) disappears and `app_late_total` (the
    only one with label `shard`) appears, so time ranges before and after differ."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "app_requests",
            "Requests served.",
            ["method", "path", "code"],
            registry=self.registry,
        )
        for method, path, code in [
            ("GET", "/", "200"),
            ("GET", "/api/items", "200"),
            ("POST", "/api/items", "201"),
            ("DELETE", "/api/items", "404"),
            ("GET", '/search?q=ä&x="y"\\z', "200"),
        ]:
            self.requests.labels(method, path, code).inc(3)
        self.inflight = Gauge(
            "app_inflight", "Requests in flight.", ["pool"], registry=self.registry
        )
        for pool in ("io", "cpu"):
            self.inflight.labels(pool).set(2)
        self.latency = Histogram(
            "app_latency_seconds",
            "Request latency.",
            ["method"],
            buckets=(0.05, 0.1, 0.5, 1.0),
            registry=self.registry,
        )
        for method in ("GET", "POST"):
            self.latency.labels(method).observe(0.2)
        self.temperature = Gauge("app_temperature_celsius", "Temperature.", registry=self.registry)
        self.temperature.set(21.5)
        Info("app_build", "Build information.", registry=self.registry).info(
            {"version": "1.2.3", "branch": "main"}
        )
        self.gone = Gauge("app_gone_info", "Removed on switch.", ["zone"], registry=self.registry)
        self.gone.labels("a").set(1)
        self.late = Counter(
            "app_late", "Added on switch.", ["queue", "shard"], registry=self.registry
        )
        self.server, self.thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.port = int(self.server.server_port)
        self.address = f"127.0.0.1:{self.port}"

    def switch(self) -> None:
        self.gone.remove("a")
        self.late.labels("late", "7").inc()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def scrape_target() -> Iterator[ScrapeTarget]:
    target = ScrapeTarget()
    try:
        yield target
    finally:
        target.stop()


class ReceivingPrometheus(ManagedProcess):
    """A real Prometheus with no scrape jobs, taking samples only over remote write
    (`--web.enable-remote-write-receiver`): the reference for query comparisons."""

    def __init__(self, binary: str, workdir: Path, extra_args: Sequence[str] = ()) -> None:
        self.workdir = workdir
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log_path = workdir / "prometheus.log"
        config = workdir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1h\n")
        self.args = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address={self.url.removeprefix('http://')}",
            "--web.enable-remote-write-receiver",
            *extra_args,
        ]

    def start(self, timeout: float = 30.0) -> ReceivingPrometheus:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=log, cwd=self.workdir)
        self.wait_ready(f"{self.url}/-/ready", timeout)
        return self


class Prometheus(ManagedProcess):
    """A real Prometheus on a loopback port, scraping the given targets every second and
    remote-writing to `remote_write_url`. `freeze()` reloads it without scrape jobs."""

    def __init__(self, binary: str, workdir: Path, targets: dict[str, str], remote_write_url: str):
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self.config_path = workdir / "prometheus.yml"
        self.log_path = workdir / "prometheus.log"
        self.targets = {**targets, "prometheus": self.address}
        self.remote_write: dict[str, Any] = {
            "url": remote_write_url,
            "name": "watchkeeper",
            "remote_timeout": "10s",
            "queue_config": {
                "batch_send_deadline": "1s",
                "max_samples_per_send": 2000,
                "min_backoff": "100ms",
                "max_backoff": "1s",
            },
            "metadata_config": {"send": True, "send_interval": "5s"},
        }

    def config(self, scrape: bool) -> str:
        jobs = [
            {"job_name": job, "static_configs": [{"targets": [address]}]}
            for job, address in self.targets.items()
        ]
        return yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                "scrape_configs": jobs if scrape else [],
                "remote_write": [self.remote_write],
            },
            sort_keys=False,
        )

    def start(self, timeout: float = 30.0) -> Prometheus:
        self.config_path.write_text(self.config(scrape=True))
        args = [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'tsdb'}",
            f"--web.listen-address={self.address}",
            "--web.enable-lifecycle",
            "--log.level=info",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=log, cwd=self.workdir)
        self.wait_ready(f"{self.url}/-/ready", timeout)
        return self

    def freeze(self) -> None:
        """Reload without scrape jobs (the remote_write section is unchanged, so its queue
        keeps running): no new samples after the end-of-run staleness markers."""
        self.config_path.write_text(self.config(scrape=False))
        response = httpx.post(f"{self.url}/-/reload", timeout=30)
        assert response.status_code == 200, response.text

    def own_metrics(self) -> dict[str, float]:
        """Prometheus' own /metrics, each name summed over its label sets."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        totals: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
        return totals


@pytest.fixture(scope="module")
def prometheus(
    prometheus_binary: str,
    tmp_path_factory: pytest.TempPathFactory,
    scrape_target: ScrapeTarget,
    watchkeeper: Server,
) -> Iterator[Prometheus]:
    """Prometheus scraping the scrape target (job `app`) and itself (job `prometheus`) every
    second, remote-writing everything to the watchkeeper fixture."""
    prom = Prometheus(
        prometheus_binary,
        tmp_path_factory.mktemp("prometheus"),
        {"app": scrape_target.address},
        f"{watchkeeper.url}/api/v1/write",
    )
    LOGS["prometheus"] = prom.log_path
    try:
        prom.start()
        yield prom
    finally:
        prom.stop()
