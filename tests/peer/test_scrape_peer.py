"""node_exporter (Debian's prometheus-node-exporter) scraped by a real Prometheus and by
watchkeeper at the same interval: both store the same series with the same labels, count the
same samples per scrape, and read the same values, within the time between two scrapes.

One documented difference, not a disagreement: Prometheus 3.x writes the `le` of histograms
and the `quantile` of summaries in a canonical float form (`quantile="0"` becomes "0.0"; 3.0
migration notes, "le and quantile label values"); Debian's Prometheus is 2.42 and stores them
as exposed, so its label sets are put in 3.x's form before comparing.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import ManagedProcess, Server, free_port
from tests.peer.conftest import LOGS, _require
from watchkeeper.ingest.exposition import format_openmetrics_float

pytestmark = pytest.mark.timeout(180)
INTERVAL = "1s"
COMPARED_SECONDS = 8
CONSTANT_GAUGES = re.compile(
    r"node_memory_(MemTotal|SwapTotal)_bytes|node_boot_time_seconds|node_filefd_maximum"
    r"|node_(uname|os|exporter_build)_info|node_time_zone_offset_seconds|go_info"
)


class NodeExporter(ManagedProcess):
    def __init__(self, binary: str, workdir: Path) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.log_path = workdir / "node_exporter.log"
        # The collectors that read /proc and /sys, whose series do not come and go with the
        # machine's activity between two scrapes (no per-process or per-connection ones).
        self.args = [
            binary,
            f"--web.listen-address={self.address}",
            "--collector.disable-defaults",
            *(
                f"--collector.{name}"
                for name in (
                    "cpu",
                    "meminfo",
                    "loadavg",
                    "stat",
                    "vmstat",
                    "filefd",
                    "uname",
                    "time",
                    "os",
                )
            ),
        ]

    def start(self) -> NodeExporter:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=log)
        self.wait_ready(f"http://{self.address}/metrics", 20)
        return self


class ScrapingPrometheus(ManagedProcess):
    def __init__(self, binary: str, workdir: Path, target: str) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.url = f"http://{self.address}"
        self.log_path = workdir / "prometheus.log"
        config = workdir / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": INTERVAL, "scrape_timeout": INTERVAL},
                    "scrape_configs": [
                        {"job_name": "node", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        self.args = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address={self.address}",
        ]
        self.workdir = workdir

    def start(self) -> ScrapingPrometheus:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=log, cwd=self.workdir)
        self.wait_ready(f"{self.url}/-/ready", 30)
        return self


@pytest.fixture(scope="module")
def node_exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeExporter]:
    binary = _require("prometheus-node-exporter")
    exporter = NodeExporter(binary, tmp_path_factory.mktemp("node_exporter"))
    LOGS["node_exporter"] = exporter.log_path
    try:
        yield exporter.start()
    finally:
        exporter.stop()


@pytest.fixture(scope="module")
def both(
    node_exporter: NodeExporter, prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ScrapingPrometheus, Server]]:
    prometheus = ScrapingPrometheus(
        prometheus_binary, tmp_path_factory.mktemp("prometheus"), node_exporter.address
    )
    config = yaml.safe_dump(
        {
            "scrape": {"interval": INTERVAL},
            "scrape_configs": [
                {"job_name": "node", "static_configs": [{"targets": [node_exporter.address]}]}
            ],
        }
    )
    server = Server(tmp_path_factory.mktemp("watchkeeper") / "data", config)
    LOGS["prometheus"] = prometheus.log_path
    LOGS["watchkeeper"] = server.log_path
    try:
        prometheus.start()
        server.start()
        time.sleep(COMPARED_SECONDS + 2)
        yield prometheus, server
    finally:
        server.stop()
        prometheus.stop()


def _matrix(url: str, query: str, at: float) -> dict[tuple[tuple[str, str], ...], list[Any]]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": query, "time": at}, timeout=30)
    body = answer.json()
    assert body["status"] == "success", body
    out = {}
    for series in body["data"]["result"]:
        labels = {
            name: format_openmetrics_float(value) if name in ("le", "quantile") else value
            for name, value in series["metric"].items()
        }
        out[tuple(sorted(labels.items()))] = [(float(t), float(v)) for t, v in series["values"]]
    return out


def test_the_same_series_with_the_same_labels(both: tuple[ScrapingPrometheus, Server]) -> None:
    prometheus, server = both
    at = time.time() - 1
    query = f'{{job="node"}}[{COMPARED_SECONDS}s]'
    theirs, ours = _matrix(prometheus.url, query, at), _matrix(server.url, query, at)
    assert len(theirs) > 100
    assert sorted(set(theirs) - set(ours))[:5] == []
    assert sorted(set(ours) - set(theirs))[:5] == []
    # one sample a scrape each, over the time both were scraping
    for labels, samples in ours.items():
        since = max(samples[0][0], theirs[labels][0][0]) - 0.5
        mine = [t for t, _ in samples if t >= since]
        alongside = [t for t, _ in theirs[labels] if t >= since]
        assert abs(len(mine) - len(alongside)) <= 1, labels


def test_the_same_number_of_samples_per_scrape(both: tuple[ScrapingPrometheus, Server]) -> None:
    prometheus, server = both
    at = time.time() - 1
    query = 'scrape_samples_scraped{job="node"}'
    theirs = {v for s in _matrix(prometheus.url, f"{query}[5s]", at).values() for _, v in s}
    ours = {v for s in _matrix(server.url, f"{query}[5s]", at).values() for _, v in s}
    assert ours == theirs
    assert _matrix(server.url, 'up{job="node"}[3s]', at)


def test_values_agree_within_two_scrapes(both: tuple[ScrapingPrometheus, Server]) -> None:
    """Each counter value watchkeeper read lies between the two values Prometheus read just
    before and just after it; the gauges that do not change while the machine runs are the
    same. (Other gauges move at any time: memory figures with every process on the machine,
    the exporter's own goroutines with the two scrapes it serves at once.)"""
    prometheus, server = both
    at = time.time() - 2
    query = f'{{job="node"}}[{COMPARED_SECONDS}s]'
    theirs, ours = _matrix(prometheus.url, query, at), _matrix(server.url, query, at)
    metadata = httpx.get(f"{prometheus.url}/api/v1/metadata", timeout=10).json()["data"]
    counters = {name for name, entries in metadata.items() if entries[0]["type"] == "counter"}
    checked: set[Any] = set()
    unchanged: set[Any] = set()
    for labels, samples in ours.items():
        name = dict(labels)["__name__"]
        reference = theirs[labels]
        for when, value in samples[1:-1]:
            before = [v for t, v in reference if t <= when]
            after = [v for t, v in reference if t >= when]
            if not before or not after:
                continue
            low, high = before[-1], after[0]
            if name in counters or name.endswith(("_total", "_count", "_sum", "_bucket")):
                assert low <= value <= high, (labels, when, value, low, high)
                checked.add(labels)
            elif CONSTANT_GAUGES.fullmatch(name):
                assert value == low, (labels, when, value, low)
                unchanged.add(labels)
    # cpu modes, vmstat and stat counters, and node_exporter's own; sizes, boot time, info
    assert len(checked) >= 20
    assert len(unchanged) >= 5
