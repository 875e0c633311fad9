"""Remote-write ingest benchmark: watchkeeper beside Prometheus and VictoriaMetrics.

One deterministic workload (realistic counters, gauges and classic histograms, by default 10,000
series over 2 hours at a 15 s scrape interval) is encoded into snappy-compressed
prometheus.WriteRequest bodies *before* any clock starts, then sent with the same requests,
order and concurrency to each target in turn. Each target runs as a subprocess on a free loopback
port with a fresh temporary data directory. Printed per target: samples/s, server CPU-seconds per
million samples, peak RSS and RSS per active series, bytes on disk per sample after a
flush/compaction, and watchkeeper's ratios to each peer against the project's goals.

It prints numbers and never asserts a time. Run `python benchmarks/ingest.py --help`.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import cramjam
import httpx
import numpy as np
import numpy.typing as npt

from watchkeeper.ingest.proto import remote_pb2

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WATCHKEEPER = Path(sys.executable).parent / "watchkeeper"
TARGETS = ("watchkeeper", "prometheus", "victoriametrics")
HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "watchkeeper-ingest-benchmark",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")
MAX_ATTEMPTS = 8  # per request, for 5xx, 429 and connection errors
GIVE_UP_AFTER = 10  # requests in a row that failed every attempt: stop sending to that target
BACKOFF_START_S = 0.05
BACKOFF_MAX_S = 5.0

EPILOG = """\
what it measures (per target, one at a time, same pre-encoded requests):
  samples/s          samples sent / wall time of the send phase
  CPU-s/M samples    server process CPU (utime+stime from /proc/PID/stat, children included)
                     during the send phase, per million samples
  peak RSS           VmHWM of the server process at the end of the run
  RSS/series         peak RSS / number of series in the workload (all active)
  bytes/sample       bytes on disk after a flush, divided by samples sent:
                       watchkeeper      POST /api/v1/admin/tsdb/flush, then DATA/metrics/blocks
                       prometheus       POST /api/v1/admin/tsdb/snapshot, then the snapshot block
                       victoriametrics  GET /internal/force_flush, wait for background merges to
                                        settle, then the whole data dir
  series found       GET /api/v1/series?match[]={__name__=~".+"} over the workload's time range

goals (watchkeeper vs peers): samples per CPU-second >= Prometheus; bytes per sample <=
VictoriaMetrics; memory per active series <= Prometheus.

workload: series shaped like node_exporter (cpu, network, disk, memory, filesystem) and
instrumented HTTP services (request counters by method/handler/code, a latency histogram with
12 buckets, process/go gauges); 5-8 labels each. Values are a pure function of --seed; the
timestamps end at the current time rounded down to --interval. Every scrape step sends all
series once, split into requests of --samples-per-request samples (one sample per series per
request, like Prometheus' remote_write). Requests for the same series never overtake each other.

examples:
  python benchmarks/ingest.py                                  # the default workload, all targets
  python benchmarks/ingest.py --series 500 --duration 10m      # a quick smoke run
  python benchmarks/ingest.py --targets watchkeeper --keep     # keep the data dir to inspect
"""


# ---------------------------------------------------------------------------------------------
# Small helpers


_DURATION_RE = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DURATION_UNITS_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 7 * 86_400_000,
    "y": 365 * 86_400_000,
}


def parse_duration_ms(text: str) -> int:
    """Milliseconds in a Prometheus-style duration such as 15s, 10m, 2h or 1h30m."""
    text = text.strip()
    pos = 0
    total = 0
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _DURATION_UNITS_MS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text or total <= 0:
        raise argparse.ArgumentTypeError(f"not a positive duration: {text!r} (e.g. 15s, 10m, 2h)")
    return total


def format_duration_ms(ms: int) -> str:
    parts = []
    for unit in ("d", "h", "m", "s"):
        count, ms = divmod(ms, _DURATION_UNITS_MS[unit])
        if count:
            parts.append(f"{count}{unit}")
    if ms:
        parts.append(f"{ms}ms")
    return "".join(parts) or "0s"


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer: {text!r}")
    return value


def target_list(text: str) -> list[str]:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    aliases = {"vm": "victoriametrics", "victoria-metrics": "victoriametrics", "wk": "watchkeeper"}
    names = [aliases.get(name, name) for name in names]
    unknown = [name for name in names if name not in TARGETS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown target(s) {unknown}; choose from {', '.join(TARGETS)}"
        )
    return list(dict.fromkeys(names))


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


def dir_size(path: Path, exclude: Sequence[str] = ()) -> int:
    """Sum of regular file sizes under path (apparent size, symlinks not followed)."""
    total = 0
    for root, dirs, files in os.walk(path):
        if root == str(path):
            dirs[:] = [d for d in dirs if d not in exclude]
        for name in files:
            try:
                info = os.lstat(os.path.join(root, name))
            except FileNotFoundError:  # removed by a background merge while walking
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Progress:
    """A plain-text percentage on stderr ('\\r' updates on a terminal, a line per 10% if not)."""

    def __init__(self, label: str, total: int, stream: TextIO = sys.stderr) -> None:
        self.label = label
        self.total = max(total, 1)
        self.stream = stream
        self.done = 0
        self.started = time.perf_counter()
        self._tty = stream.isatty()
        self._shown = -1
        self._lock = threading.Lock()

    def advance(self, count: int = 1) -> None:
        with self._lock:
            self.done += count
            percent = self.done * 100 // self.total
            step = 1 if self._tty else 10
            if percent // step != self._shown // step or self._shown < 0:
                self._shown = percent
                elapsed = time.perf_counter() - self.started
                line = f"{self.label}: {percent:3d}% ({self.done}/{self.total}, {elapsed:.1f}s)"
                if self._tty:
                    self.stream.write("\r" + line)
                else:
                    self.stream.write(line + "\n")
                self.stream.flush()

    def close(self) -> None:
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The workload


HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CPU_MODES = ("idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user")
REGIONS = ("eu-west-1", "us-east-1", "ap-southeast-2")
SERVICES = ("api-gateway", "checkout", "catalog", "payments", "auth", "search")
HANDLERS = ("/api/v1/items", "/api/v1/items/{id}", "/api/v1/orders", "/healthz", "/metrics")
ROUTES = {  # handler -> (method, code) pairs that see traffic
    "/api/v1/items": (("GET", "200"), ("GET", "304"), ("GET", "500")),
    "/api/v1/items/{id}": (("GET", "200"), ("GET", "404"), ("DELETE", "204")),
    "/api/v1/orders": (("GET", "200"), ("POST", "201"), ("POST", "400"), ("POST", "500")),
    "/healthz": (("GET", "200"),),
    "/metrics": (("GET", "200"),),
}


def format_le(bound: float) -> str:
    """Bucket bounds as client_golang prints them (0.005, 1, 2.5, +Inf)."""
    if math.isinf(bound):
        return "+Inf"
    return repr(bound).removesuffix(".0")


@dataclass
class Workload:
    """Series (sorted label pairs), their values [series, step] and timestamps [series, step]."""

    series_labels: list[tuple[tuple[str, str], ...]]
    kinds: list[str]
    values: npt.NDArray[np.float64]
    instance_of: npt.NDArray[np.int64]
    instance_ts: npt.NDArray[np.int64]
    start_ms: int
    end_ms: int
    interval_ms: int

    @property
    def series(self) -> int:
        return len(self.series_labels)

    @property
    def steps(self) -> int:
        return int(self.values.shape[1])

    @property
    def samples(self) -> int:
        return self.series * self.steps

    def timestamps(self, step: int) -> npt.NDArray[np.int64]:
        stamps: npt.NDArray[np.int64] = self.instance_ts[self.instance_of, step]
        return stamps


class _Builder:
    """Accumulates series for one instance at a time; values are generated vectorised."""

    def __init__(self, seed: int, steps: int, limit: int) -> None:
        # Two streams: `rng` draws the series and their parameters (a fixed number of draws per
        # series, so the same --seed gives the same series whatever --duration is) and `walks`
        # draws the per-step values.
        self.rng = np.random.default_rng([seed, 0])
        self.walks = np.random.default_rng([seed, 1])
        self.steps = steps
        self.limit = limit
        self.labels: list[tuple[tuple[str, str], ...]] = []
        self.kinds: list[str] = []
        self.rows: list[npt.NDArray[np.float64]] = []
        self.instance_of: list[int] = []
        self.base: dict[str, str] = {}
        self.instance = -1
        self.restart = -1  # step at which this instance's process restarts (counters reset)

    @property
    def full(self) -> bool:
        return len(self.labels) >= self.limit

    def start_instance(self, base: dict[str, str]) -> None:
        self.instance += 1
        self.base = base
        rng = self.rng
        restarts, when = rng.random(), rng.random()
        self.restart = (
            1 + int(when * (self.steps - 1)) if restarts < 0.05 and self.steps > 1 else -1
        )

    def add(self, kind: str, name: str, extra: dict[str, str], row: npt.NDArray[Any]) -> None:
        if self.full:
            return
        pairs = {"__name__": name, **self.base, **extra}
        self.labels.append(tuple(sorted(pairs.items())))
        self.kinds.append(kind)
        self.rows.append(np.asarray(row, dtype=np.float64))
        self.instance_of.append(self.instance)

    # value shapes -----------------------------------------------------------------------

    def counter(self, rate: float, start: float, denominator: int = 1) -> npt.NDArray[Any]:
        """Integer increments (Poisson, per step) summed from a start; reset on restart."""
        counts = self.walks.poisson(max(rate, 0.0), self.steps).astype(np.int64)
        counts[0] = int(start * denominator)
        total = np.cumsum(counts)
        if self.restart > 0:  # the process restarted: the counter starts again from 0
            total[self.restart :] = np.cumsum(counts[self.restart :])
        return total / denominator if denominator != 1 else total.astype(np.float64)

    def walk(
        self, start: float, sigma: float, low: float, high: float, decimals: int | None = None
    ) -> npt.NDArray[Any]:
        """A random walk kept within [low, high], rounded to decimals (None: full float)."""
        steps = self.walks.normal(0.0, sigma, self.steps)
        steps[0] = 0.0
        row = np.clip(start + np.cumsum(steps), low, high)
        return np.round(row, decimals) if decimals is not None else row

    def quantized_walk(self, start: float, sigma: float, low: float, high: float, q: int) -> Any:
        """A random walk of integers that are multiples of q (memory and disk sizes)."""
        row = self.walk(start / q, sigma / q, low / q, high / q)
        return np.round(row) * q

    def histogram(
        self, name: str, extra: dict[str, str], rate: float, median_s: float, spread: float
    ) -> None:
        """Classic histogram: cumulative _bucket{le} counters, _sum and _count."""
        rng = self.rng
        mu = math.log(median_s)
        cdf = [
            0.5 * (1 + math.erf((math.log(le) - mu) / (spread * math.sqrt(2))))
            for le in HTTP_BUCKETS
        ]
        probs = np.diff(np.array([0.0, *cdf, 1.0]))
        probs = np.clip(probs, 0.0, None)
        probs /= probs.sum()
        per_step = self.walks.poisson(rate, self.steps).astype(np.int64)
        per_step[0] = int(rng.integers(1_000, 2_000_000))
        buckets = self.walks.multinomial(per_step, probs)  # [steps, len(buckets)+1]
        mean = math.exp(mu + spread * spread / 2)
        sums = per_step * mean * self.walks.lognormal(0.0, 0.15, self.steps)
        cum_time = np.cumsum(buckets, axis=0)
        cum_sum = np.cumsum(sums)
        if self.restart > 0:  # the process restarted: every counter starts again from 0
            cum_time[self.restart :] = np.cumsum(buckets[self.restart :], axis=0)
            cum_sum[self.restart :] = np.cumsum(sums[self.restart :])
        cum_le = np.cumsum(cum_time, axis=1)  # cumulative over le as well
        for index, le in enumerate((*HTTP_BUCKETS, math.inf)):
            self.add(
                "histogram", f"{name}_bucket", {**extra, "le": format_le(le)}, cum_le[:, index]
            )
        self.add("histogram", f"{name}_sum", extra, cum_sum)
        self.add("histogram", f"{name}_count", extra, cum_le[:, -1])


def _node_instance(b: _Builder) -> None:
    rng = b.rng
    cpus = int(rng.choice([2, 4, 8, 16]))
    for cpu in range(cpus):
        for mode in CPU_MODES:
            busy = {"idle": 8.0, "user": 3.0, "system": 1.2, "iowait": 0.3}.get(mode, 0.02)
            per_step_cs = busy * 100 * float(rng.uniform(0.5, 1.5))
            uptime = float(rng.uniform(1e4, 1e6))
            b.add(
                "counter",
                "node_cpu_seconds_total",
                {"cpu": str(cpu), "mode": mode},
                b.counter(per_step_cs, uptime * busy / 15, denominator=100),
            )
    for device in ("eth0", "lo"):
        scale = 1.0 if device == "eth0" else 0.1
        for direction in ("receive", "transmit"):
            bps = float(rng.lognormal(13, 1.5)) * scale
            b.add(
                "counter",
                f"node_network_{direction}_bytes_total",
                {"device": device},
                b.counter(bps * 15, bps * 1e5),
            )
            b.add(
                "counter",
                f"node_network_{direction}_packets_total",
                {"device": device},
                b.counter(bps * 15 / 900, bps * 1e5 / 900),
            )
    for device in ("nvme0n1", "sda"):
        for what in ("read", "written"):
            bps = float(rng.lognormal(12, 1.5))
            b.add(
                "counter",
                f"node_disk_{what}_bytes_total",
                {"device": device},
                b.counter(bps * 15 / 512, bps * 1e4) * 512,
            )
        b.add(
            "counter",
            "node_disk_io_time_seconds_total",
            {"device": device},
            b.counter(float(rng.uniform(1, 300)), float(rng.uniform(1e3, 1e5)), denominator=1000),
        )
    for name, rate in (
        ("node_context_switches_total", 4e4),
        ("node_intr_total", 2e4),
        ("node_forks_total", 30.0),
    ):
        per_step = rate * 15 * float(rng.uniform(0.3, 3))
        b.add("counter", name, {}, b.counter(per_step, per_step * 4e4))
    load = float(rng.uniform(0.1, cpus * 0.8))
    for name, sigma in (("node_load1", 0.15), ("node_load5", 0.06), ("node_load15", 0.03)):
        b.add("gauge", name, {}, b.walk(load, sigma, 0.0, cpus * 2.0, decimals=2))
    total_mem = float(cpus * 4 * 2**30)
    b.add("gauge", "node_memory_MemTotal_bytes", {}, np.full(b.steps, total_mem))
    for name, fraction in (
        ("node_memory_MemAvailable_bytes", 0.55),
        ("node_memory_MemFree_bytes", 0.2),
        ("node_memory_Cached_bytes", 0.3),
        ("node_memory_Buffers_bytes", 0.02),
    ):
        start = total_mem * fraction * float(rng.uniform(0.6, 1.4))
        b.add(
            "gauge",
            name,
            {},
            b.quantized_walk(start, total_mem * 0.002, 0.0, total_mem, 4096),
        )
    b.add("gauge", "node_procs_running", {}, b.walk(3, 1.0, 1, 64, decimals=0))
    b.add(
        "gauge", "node_boot_time_seconds", {}, np.full(b.steps, 1.7e9 + int(rng.integers(0, 10**7)))
    )
    for device, fstype, mount, size_gib in (
        ("/dev/nvme0n1p1", "ext4", "/", 100),
        ("/dev/nvme0n1p2", "ext4", "/var", 500),
        ("tmpfs", "tmpfs", "/run", 2),
    ):
        size = float(size_gib * 2**30)
        fs = {"device": device, "fstype": fstype, "mountpoint": mount}
        b.add("gauge", "node_filesystem_size_bytes", fs, np.full(b.steps, size))
        avail = size * float(rng.uniform(0.1, 0.9))
        b.add(
            "gauge", "node_filesystem_avail_bytes", fs, b.quantized_walk(avail, 2e6, 0, size, 4096)
        )


def _service_instance(b: _Builder) -> None:
    rng = b.rng
    popularity = float(rng.lognormal(0, 1))
    for handler in HANDLERS:
        routes = ROUTES[handler]
        for method, code in routes:
            weight = 1.0 if code.startswith("2") else 0.02
            if handler in ("/healthz", "/metrics"):
                weight = 0.3
            rps = popularity * weight * float(rng.lognormal(2, 1))
            b.add(
                "counter",
                "http_requests_total",
                {"method": method, "handler": handler, "code": code},
                b.counter(rps * 15, rps * float(rng.uniform(1e3, 1e5))),
            )
        for method in dict.fromkeys(method for method, _ in routes):
            rps = popularity * float(rng.lognormal(2, 1))
            b.histogram(
                "http_request_duration_seconds",
                {"method": method, "handler": handler},
                rate=rps * 15,
                median_s=float(rng.uniform(0.005, 0.2)),
                spread=float(rng.uniform(0.5, 1.5)),
            )
    cpu_start = float(rng.uniform(1e3, 1e6))
    b.add("counter", "process_cpu_seconds_total", {}, b.counter(450, cpu_start, denominator=100))
    mem = float(rng.uniform(50, 900)) * 2**20
    b.add(
        "gauge",
        "process_resident_memory_bytes",
        {},
        b.quantized_walk(mem, 2**20, 2**24, 4 * mem, 4096),
    )
    b.add("gauge", "process_open_fds", {}, b.walk(40, 2.0, 10, 1024, decimals=0))
    b.add("gauge", "go_goroutines", {}, b.walk(120, 5.0, 8, 10_000, decimals=0))
    b.add("gauge", "go_memstats_heap_alloc_bytes", {}, b.walk(mem / 3, mem / 50, 1e6, mem))
    b.add("gauge", "up", {}, np.ones(b.steps))


def build_workload(series: int, duration_ms: int, interval_ms: int, seed: int) -> Workload:
    """The series, values and timestamps for a run; values depend only on the arguments."""
    steps = max(duration_ms // interval_ms, 1)
    builder = _Builder(seed, steps, series)
    rng = builder.rng
    offsets: list[int] = []
    while not builder.full:
        region = REGIONS[int(rng.integers(len(REGIONS)))]
        env = "prod" if rng.random() < 0.8 else "staging"
        ip = f"10.{rng.integers(0, 256)}.{rng.integers(0, 256)}.{rng.integers(1, 255)}"
        if rng.random() < 0.45:
            base = {"job": "node", "instance": f"{ip}:9100", "env": env, "region": region}
            builder.start_instance(base)
            _node_instance(builder)
        else:
            job = SERVICES[int(rng.integers(len(SERVICES)))]
            base = {"job": job, "instance": f"{ip}:8080", "env": env, "region": region}
            builder.start_instance(base)
            _service_instance(builder)
        # each target is scraped at a fixed phase inside the interval, like Prometheus' offsets
        offsets.append(int(rng.random() * max(interval_ms - 100, 1)))
    instances = len(offsets)
    end_ms = int(time.time() * 1000) // interval_ms * interval_ms
    start_ms = end_ms - steps * interval_ms
    step_ts = start_ms + np.arange(steps, dtype=np.int64) * interval_ms
    jitter = builder.walks.integers(0, 6, size=(instances, steps))  # a few ms of scrape jitter
    instance_ts = step_ts[None, :] + np.asarray(offsets, dtype=np.int64)[:, None] + jitter
    return Workload(
        series_labels=builder.labels,
        kinds=builder.kinds,
        values=np.vstack(builder.rows),
        instance_of=np.asarray(builder.instance_of, dtype=np.int64),
        instance_ts=instance_ts.astype(np.int64),
        start_ms=start_ms,
        end_ms=end_ms,
        interval_ms=interval_ms,
    )


@dataclass
class EncodedRequests:
    bodies: list[bytes]
    chunk_samples: list[int]  # samples in each request of a step, by chunk
    raw_bytes: int
    seconds: float

    @property
    def chunks_per_step(self) -> int:
        return len(self.chunk_samples)

    @property
    def compressed_bytes(self) -> int:
        return sum(len(body) for body in self.bodies)


def encode_requests(workload: Workload, samples_per_request: int) -> EncodedRequests:
    """Snappy-compressed WriteRequests in send order: step-major, then series chunk.

    Each chunk's WriteRequest (labels and one Sample per series) is built once; for every step
    only the samples' values and timestamps are set before serialising.
    """
    started = time.perf_counter()
    series = workload.series
    bounds = list(range(0, series, samples_per_request))
    templates: list[tuple[remote_pb2.WriteRequest, list[Any], int, int]] = []
    for lo in bounds:
        hi = min(lo + samples_per_request, series)
        request = remote_pb2.WriteRequest()
        samples = []
        for labels in workload.series_labels[lo:hi]:
            ts = request.timeseries.add()
            for name, value in labels:
                ts.labels.add(name=name, value=value)
            samples.append(ts.samples.add())
        templates.append((request, samples, lo, hi))
    compress = cramjam.snappy.compress_raw
    bodies: list[bytes] = []
    raw = 0
    progress = Progress("encode", workload.steps)
    for step in range(workload.steps):
        values = workload.values[:, step].tolist()
        stamps = workload.timestamps(step).tolist()
        for request, samples, lo, hi in templates:
            for sample, value, stamp in zip(samples, values[lo:hi], stamps[lo:hi], strict=True):
                sample.value = value
                sample.timestamp = stamp
            payload = request.SerializeToString()
            raw += len(payload)
            bodies.append(bytes(compress(payload)))
        progress.advance()
    progress.close()
    sizes = [hi - lo for _, _, lo, hi in templates]
    return EncodedRequests(bodies, sizes, raw, time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------
# Server processes


def _proc_children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(pid: int) -> list[int]:
    children = _proc_children()
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """utime+stime (+ waited-for children) of pid and its live descendants, in seconds."""
    ticks = 0
    for member in process_tree(pid):
        try:
            text = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        # fields[0] is field 3 (state); utime, stime, cutime, cstime are fields 14-17
        ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLK_TCK


def memory_kib(pid: int, key: str) -> int:
    """A /proc/PID/status value (VmHWM, VmRSS) summed over pid and its descendants, in KiB."""
    total = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith(key + ":"):
                total += int(line.split()[1])
    return total


@dataclass
class Server:
    name: str
    argv: list[str]
    env: dict[str, str]
    workdir: Path
    data_dir: Path
    port: int
    ready_path: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line for line in text[-lines:])

    def start(self, timeout_s: float = 120.0) -> float:
        """Start and wait until ready; returns the seconds it took."""
        started = time.perf_counter()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                cwd=self.workdir,
            )
        with httpx.Client(timeout=5.0) as client:
            while time.perf_counter() - started < timeout_s:
                if not self.alive():
                    raise RuntimeError(
                        f"{self.name} exited with status {self.process.returncode} before it was "
                        f"ready; log {self.log_path}:\n{self.log_tail()}"
                    )
                try:
                    if client.get(self.url + self.ready_path).status_code == 200:
                        return time.perf_counter() - started
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout_s:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            note(f"{self.name}: did not stop within 60s of SIGTERM; killing it")
            self.process.kill()
            self.process.wait(timeout=30)


def tool_version(argv: list[str], package: str) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        first = (result.stdout or result.stderr).strip().splitlines()
        if first and first[0].strip():
            return first[0].strip()
    except OSError:
        pass
    if shutil.which("dpkg-query"):
        result = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", package],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0 and result.stdout.strip():
            return f"{package} {result.stdout.strip()} (Debian package)"
    return "unknown version"


# ---------------------------------------------------------------------------------------------
# Sending


@dataclass
class SendStats:
    requests: int = 0
    ok: int = 0
    client_errors: int = 0  # 4xx other than 429: the samples were refused, not retried
    failed: int = 0  # gave up after MAX_ATTEMPTS (5xx, 429 or connection errors)
    retries: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    first_error: str = ""
    seconds: float = 0.0
    aborted: str = ""
    not_sent: int = 0  # requests skipped after the send phase was aborted
    samples_ok: int = 0  # samples in requests answered 2xx
    client_cpu_s: float = 0.0  # this process (the senders), for context

    @property
    def complete(self) -> bool:
        return self.ok == self.requests


def send_all(
    url: str,
    encoded: EncodedRequests,
    concurrency: int,
    alive: Callable[[], bool],
    label: str,
) -> SendStats:
    """POST every body to url with `concurrency` workers, keeping per-series order.

    Workers take requests in send order. Request (step k, chunk c) waits until (k-1, c) has
    finished, so a series' samples never overtake each other (Prometheus' shards keep a series
    on one shard for the same reason).
    """
    stats = SendStats(requests=len(encoded.bodies))
    bodies = encoded.bodies
    chunks = encoded.chunks_per_step
    done_step = [-1] * chunks
    condition = threading.Condition()
    next_index = [0]
    index_lock = threading.Lock()
    stats_lock = threading.Lock()
    abort = threading.Event()
    progress = Progress(f"send to {label}", len(bodies))

    consecutive_failures = [0]

    def record(status: int | None, message: str, outcome: str, retries: int, samples: int) -> None:
        with stats_lock:
            stats.retries += retries
            if status is not None:
                stats.statuses[status] = stats.statuses.get(status, 0) + 1
            if outcome == "ok":
                stats.ok += 1
                stats.samples_ok += samples
            elif outcome == "client_error":
                stats.client_errors += 1
            else:
                stats.failed += 1
            if outcome != "ok" and not stats.first_error:
                stats.first_error = message
            consecutive_failures[0] = consecutive_failures[0] + 1 if outcome == "failed" else 0
            if consecutive_failures[0] >= GIVE_UP_AFTER and not abort.is_set():
                stats.aborted = (
                    f"{GIVE_UP_AFTER} requests in a row failed {MAX_ATTEMPTS} attempts each; "
                    "the remaining requests were not sent"
                )
                abort.set()

    def post(client: httpx.Client, body: bytes, samples: int) -> None:
        delay = BACKOFF_START_S
        message = ""
        status: int | None = None
        attempt = 0
        for attempt in range(MAX_ATTEMPTS):
            if abort.is_set():
                break
            try:
                response = client.post(url, content=body)
                status = response.status_code
                if 200 <= status < 300:
                    record(status, "", "ok", attempt, samples)
                    return
                message = f"HTTP {status}: {response.text.strip()[:300]}"
                if status != 429 and status < 500:
                    record(status, message, "client_error", attempt, samples)
                    return
            except httpx.TransportError as err:
                status = None
                message = f"{type(err).__name__}: {err}"
                if not alive():
                    stats.aborted = (
                        f"server exited ({message}); the remaining requests were not sent"
                    )
                    abort.set()
                    break
            if attempt + 1 < MAX_ATTEMPTS:
                time.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
        record(status, message, "failed", attempt, samples)

    def worker() -> None:
        with httpx.Client(headers=HEADERS, timeout=httpx.Timeout(120.0, connect=10.0)) as client:
            while True:
                with index_lock:
                    index = next_index[0]
                    next_index[0] += 1
                if index >= len(bodies):
                    return
                step, chunk = divmod(index, chunks)
                with condition:
                    while done_step[chunk] < step - 1:
                        condition.wait()
                if abort.is_set():
                    with stats_lock:
                        stats.not_sent += 1
                else:
                    post(client, bodies[index], encoded.chunk_samples[chunk])
                with condition:
                    done_step[chunk] = step
                    condition.notify_all()
                progress.advance()

    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sender") as pool:
        futures = [pool.submit(worker) for _ in range(concurrency)]
        try:
            for future in futures:
                future.result()
        except BaseException:  # Ctrl-C: let the workers finish their current request and stop
            stats.aborted = "interrupted"
            abort.set()
            raise
    stats.seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    stats.client_cpu_s = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
    progress.close()
    return stats


# ---------------------------------------------------------------------------------------------
# Targets


@dataclass
class Result:
    target: str
    version: str = ""
    error: str = ""
    skipped: str = ""
    samples: int = 0
    send: SendStats = field(default_factory=SendStats)
    startup_s: float = 0.0
    cpu_send_s: float = 0.0
    cpu_flush_s: float = 0.0
    flush_s: float = 0.0
    rss_before_kib: int = 0
    peak_rss_kib: int = 0
    disk_bytes: int = 0
    disk_what: str = ""
    total_dir_bytes: int = 0
    series_found: int | None = None
    series_note: str = ""
    workdir: Path | None = None

    @property
    def measured(self) -> bool:
        return not self.error and not self.skipped and self.send.seconds > 0

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.send.seconds if self.send.seconds else math.nan

    @property
    def cpu_per_million(self) -> float:
        return self.cpu_send_s / (self.samples / 1e6) if self.samples else math.nan

    @property
    def samples_per_cpu_s(self) -> float:
        return self.samples / self.cpu_send_s if self.cpu_send_s > 0 else math.nan

    @property
    def bytes_per_sample(self) -> float:
        return self.disk_bytes / self.samples if self.samples and self.disk_bytes else math.nan

    def rss_per_series(self, series: int) -> float:
        return self.peak_rss_kib * 1024 / series if series else math.nan


def _make_server(target: str, args: argparse.Namespace, workdir: Path, series: int) -> Server:
    data = workdir / "data"
    port = free_loopback_port()
    listen = f"127.0.0.1:{port}"
    if target == "watchkeeper":
        return Server(
            target,
            [str(args.watchkeeper), "serve", "--data-dir", str(data), "--listen", listen],
            {"WATCHKEEPER_SELF_MONITORING__ENABLED": "false"},
            workdir,
            data,
            port,
            "/-/ready",
        )
    if target == "prometheus":
        config = workdir / "prometheus.yml"
        config.write_text("# no scrape jobs: samples arrive by remote_write only\nglobal: {}\n")
        return Server(
            target,
            [
                str(args.prometheus),
                "--web.enable-remote-write-receiver",
                "--web.enable-admin-api",
                f"--storage.tsdb.path={data}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--config.file={config}",
            ],
            {},
            workdir,
            data,
            port,
            "/-/ready",
        )
    return Server(
        target,
        [
            str(args.victoriametrics),
            f"-storageDataPath={data}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-retentionPeriod=100y",
            f"-search.maxSeries={max(30_000, 2 * series)}",
        ],
        {},
        workdir,
        data,
        port,
        "/health",
    )


def _binary(target: str, args: argparse.Namespace) -> Path | None:
    path: Path = getattr(args, target)
    if path.exists() and os.access(path, os.X_OK):
        return path
    found = shutil.which(str(path))
    return Path(found) if found else None


def _version(target: str, binary: Path) -> str:
    if target == "watchkeeper":
        return tool_version([str(binary), "--version"], "watchkeeper")
    if target == "prometheus":
        return tool_version([str(binary), "--version"], "prometheus")
    return tool_version([str(binary), "-version"], "victoria-metrics")


def _flush_and_measure(server: Server, result: Result, client: httpx.Client) -> None:
    data = server.data_dir
    started = time.perf_counter()
    if server.name == "watchkeeper":
        response = client.post(server.url + "/api/v1/admin/tsdb/flush", timeout=1800)
        response.raise_for_status()
        result.flush_s = time.perf_counter() - started
        blocks = data / "metrics" / "blocks"
        measured = blocks if blocks.is_dir() else data
        result.disk_what = "metrics/blocks after flush" if blocks.is_dir() else "data dir"
        result.disk_bytes = dir_size(measured)
        result.total_dir_bytes = dir_size(data)
    elif server.name == "prometheus":
        response = client.post(server.url + "/api/v1/admin/tsdb/snapshot", timeout=1800)
        response.raise_for_status()
        result.flush_s = time.perf_counter() - started
        name = response.json()["data"]["name"]
        result.disk_what = "snapshot block (head compacted)"
        result.disk_bytes = dir_size(data / "snapshots" / name)
        result.total_dir_bytes = dir_size(data, exclude=("snapshots",))
    else:
        client.get(server.url + "/internal/force_flush", timeout=600).raise_for_status()
        # merges run in the background: wait until the size holds still for 3 checks in a row
        last, stable, deadline = -1, 0, time.perf_counter() + 120
        while stable < 3 and time.perf_counter() < deadline:
            time.sleep(1.0)
            size = dir_size(data)
            stable = stable + 1 if size == last else 0
            last = size
        result.flush_s = time.perf_counter() - started
        result.disk_what = "whole data dir after force_flush and merges"
        result.disk_bytes = last
        result.total_dir_bytes = last


def _count_series(server: Server, result: Result, workload: Workload, client: httpx.Client) -> None:
    params = {
        "match[]": '{__name__=~".+"}',
        "start": f"{workload.start_ms / 1000 - 60:.3f}",
        "end": f"{time.time() + 60:.3f}",
    }
    try:
        response = client.get(server.url + "/api/v1/series", params=params, timeout=600)
        if response.status_code != 200:
            result.series_note = f"HTTP {response.status_code}: {response.text.strip()[:200]}"
            return
        result.series_found = len(response.json()["data"])
    except (httpx.HTTPError, ValueError, KeyError) as err:
        result.series_note = f"{type(err).__name__}: {err}"


def run_target(
    target: str, args: argparse.Namespace, workload: Workload, encoded: EncodedRequests
) -> Result:
    result = Result(target, samples=workload.samples)
    binary = _binary(target, args)
    if binary is None:
        result.skipped = f"{getattr(args, target)} not found"
        note(f"{target}: skipped, {result.skipped}")
        return result
    setattr(args, target, binary)
    result.version = _version(target, binary)
    workdir = Path(tempfile.mkdtemp(prefix=f"wk-ingest-{target}-", dir=args.tmpdir))
    result.workdir = workdir
    server = _make_server(target, args, workdir, workload.series)
    note(f"{target}: starting {shlex.join(server.argv)}")
    try:
        result.startup_s = server.start()
        time.sleep(1.0)  # let start-up work settle before the CPU baseline
        with httpx.Client(timeout=120) as client:
            result.rss_before_kib = memory_kib(server.pid, "VmRSS")
            cpu_before = cpu_seconds(server.pid)
            result.send = send_all(
                server.url + "/api/v1/write", encoded, args.concurrency, server.alive, target
            )
            cpu_after = cpu_seconds(server.pid)
            result.cpu_send_s = cpu_after - cpu_before
            if not server.alive():
                raise RuntimeError(f"{target} exited during the send phase:\n{server.log_tail()}")
            _flush_and_measure(server, result, client)
            result.cpu_flush_s = cpu_seconds(server.pid) - cpu_after
            _count_series(server, result, workload, client)
            result.peak_rss_kib = memory_kib(server.pid, "VmHWM")
    except (RuntimeError, httpx.HTTPError, OSError, ValueError, KeyError) as err:
        result.error = f"{type(err).__name__}: {err}"
        note(f"{target}: FAILED: {result.error}")
        if server.alive():
            result.peak_rss_kib = memory_kib(server.pid, "VmHWM")
    finally:
        server.stop()
        if args.keep:
            note(f"{target}: kept {workdir} (server log: {server.log_path})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


# ---------------------------------------------------------------------------------------------
# Report


def _fmt(value: float, spec: str) -> str:
    return "n/a" if value is None or math.isnan(value) else format(value, spec)


def print_report(
    results: list[Result],
    workload: Workload,
    encoded: EncodedRequests,
    args: argparse.Namespace,
    out: TextIO = sys.stdout,
) -> None:
    series = workload.series
    headers = [
        "target",
        "samples/s",
        "CPU-s/M samples",
        "peak RSS",
        "RSS/series",
        "bytes/sample",
        "series found",
        "4xx",
        "failed/unsent",
    ]
    rows: list[list[str]] = []
    for r in results:
        if r.skipped:
            rows.append([r.target, f"skipped: {r.skipped}", *[""] * 7])
            continue
        if not r.measured:
            rows.append([r.target, "FAILED", *[""] * 7])
            continue
        found = "n/a" if r.series_found is None else f"{r.series_found}"
        rows.append(
            [
                r.target,
                _fmt(r.samples_per_s, ",.0f"),
                _fmt(r.cpu_per_million, ".3f"),
                human_bytes(r.peak_rss_kib * 1024),
                _fmt(r.rss_per_series(series), ",.0f") + " B",
                _fmt(r.bytes_per_sample, ".3f"),
                found,
                str(r.send.client_errors),
                str(r.send.failed + r.send.not_sent) + ("" if r.send.complete else " (!)"),
            ]
        )
    full_rows = [row for row in rows if len(row) > 1 and row[2]]
    widths = [max(len(h), *(len(row[i]) for row in full_rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        if len(cells) > 1 and cells[1].startswith(("skipped", "FAILED")):
            return f"{first}  {cells[1]}"
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    p = out.write
    p("\n== results ==\n")
    p(line(headers) + "\n")
    p("  ".join("-" * w for w in widths) + "\n")
    for row in rows:
        p(line(row) + "\n")
    for r in results:
        if r.measured and not r.send.complete:
            p(
                f"(!) {r.target}: only {r.send.ok} of {r.send.requests} requests "
                f"({r.send.samples_ok:,} of {r.samples:,} samples) were accepted; its numbers "
                "are not comparable (see details)\n"
            )

    p("\n== details ==\n")
    for r in results:
        if r.skipped:
            continue
        p(f"{r.target} ({r.version})\n")
        if r.error:
            p(f"  error: {r.error}\n")
        s = r.send
        p(
            f"  send: {s.seconds:.2f}s wall, {s.requests} requests, {s.ok} ok, "
            f"{s.client_errors} 4xx, {s.failed} failed, {s.retries} retries, "
            f"{s.not_sent} not sent, status counts {dict(sorted(s.statuses.items()))}; "
            f"{s.samples_ok:,} of {r.samples:,} samples accepted\n"
        )
        if s.first_error:
            p(f"  first error: {s.first_error}\n")
        if s.aborted:
            p(f"  aborted: {s.aborted}\n")
        p(
            f"  server CPU: {r.cpu_send_s:.2f}s during send "
            f"({_fmt(r.samples_per_cpu_s, ',.0f')} samples per CPU-second), "
            f"{r.cpu_flush_s:.2f}s during flush/measurement; the senders used "
            f"{s.client_cpu_s:.2f}s\n"
        )
        p(
            f"  memory: RSS {human_bytes(r.rss_before_kib * 1024)} before sending, "
            f"peak {human_bytes(r.peak_rss_kib * 1024)}\n"
        )
        if r.disk_what:
            p(
                f"  disk: {human_bytes(r.disk_bytes)} in {r.disk_what} "
                f"({r.disk_bytes:,} bytes, flush {r.flush_s:.2f}s); "
                f"whole data dir {human_bytes(r.total_dir_bytes)}"
                f"{' excluding snapshots' if r.target == 'prometheus' else ''}\n"
            )
        found = "n/a" if r.series_found is None else str(r.series_found)
        p(f"  series found: {found} of {series}{'  ' + r.series_note if r.series_note else ''}\n")
        p(f"  started in {r.startup_s:.2f}s\n")
        if r.workdir and args.keep:
            p(f"  kept: {r.workdir}\n")

    print_ratios(results, series, out)


def print_ratios(results: list[Result], series: int, out: TextIO) -> None:
    by_name = {r.target: r for r in results if r.measured}
    wk = by_name.get("watchkeeper")
    p = out.write
    p("\n== watchkeeper vs peers ==\n")
    if wk is None:
        p("watchkeeper was not measured; no ratios.\n")
        return
    peers = [name for name in ("prometheus", "victoriametrics") if name in by_name]
    if not peers:
        p("no peer was measured; no ratios.\n")
        return
    # (label, value getter, higher is better, peer whose value is the goal)
    metrics: list[tuple[str, Callable[[Result], float], bool, str]] = [
        ("samples per CPU-second", lambda r: r.samples_per_cpu_s, True, "prometheus"),
        ("bytes per sample", lambda r: r.bytes_per_sample, False, "victoriametrics"),
        ("memory per active series", lambda r: r.rss_per_series(series), False, "prometheus"),
        ("samples/s (wall)", lambda r: r.samples_per_s, True, ""),
    ]
    for peer in peers:
        other = by_name[peer]
        p(f"watchkeeper / {peer}:\n")
        incomplete = [r.target for r in (wk, other) if not r.send.complete]
        if incomplete:
            p(f"  (!) not every request was accepted by {' and '.join(incomplete)}\n")
        for label, get, higher, goal_peer in metrics:
            mine, theirs = get(wk), get(other)
            ratio = mine / theirs if theirs and not math.isnan(theirs) else math.nan
            better = "higher is better" if higher else "lower is better"
            if goal_peer == peer:
                if math.isnan(ratio):
                    verdict = "goal: n/a"
                else:
                    met = ratio >= 1.0 if higher else ratio <= 1.0
                    sign = ">=" if higher else "<="
                    verdict = f"goal {sign} 1.00: {'MET' if met else 'NOT MET'}"
            else:
                verdict = "(for reference)"
            shown = f"{'n/a':>9}" if math.isnan(ratio) else f"{ratio:8.3f}x"
            p(f"  {label:<26} {shown}  ({better})  {verdict}\n")


# ---------------------------------------------------------------------------------------------
# Main


def add_server_arguments(run: Any) -> None:
    """The options every benchmark has for the servers it starts (`run`, an argument group):
    --keep, --tmpdir, --watchkeeper, --prometheus."""
    run.add_argument(
        "--keep", action="store_true", help="keep the temporary data dirs and server logs"
    )
    run.add_argument(
        "--tmpdir",
        type=Path,
        default=None,
        help="where the temporary data dirs are made (default: the system temp dir)",
    )
    run.add_argument(
        "--watchkeeper",
        type=Path,
        default=DEFAULT_WATCHKEEPER,
        help="watchkeeper executable (default: the one beside this Python, %(default)s)",
    )
    run.add_argument(
        "--prometheus", type=Path, default=Path("/usr/bin/prometheus"), help="%(default)s"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/ingest.py",
        description="Ingest one deterministic remote_write workload into watchkeeper, Prometheus "
        "and VictoriaMetrics in turn and compare throughput, CPU, memory and disk.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    workload = parser.add_argument_group("workload")
    workload.add_argument(
        "--series",
        type=positive_int,
        default=10_000,
        help="number of series, all active for the whole run (default: %(default)s)",
    )
    workload.add_argument(
        "--duration",
        type=parse_duration_ms,
        default="2h",
        help="time span of the samples, ending now (default: 2h)",
    )
    workload.add_argument(
        "--interval",
        type=parse_duration_ms,
        default="15s",
        help="scrape interval: one sample per series per interval (default: 15s)",
    )
    workload.add_argument(
        "--seed", type=int, default=1, help="seed of the value generator (default: %(default)s)"
    )
    send = parser.add_argument_group("sending")
    send.add_argument(
        "--samples-per-request",
        type=positive_int,
        default=2000,
        help="samples per write request, like Prometheus' max_samples_per_send "
        "(default: %(default)s)",
    )
    send.add_argument(
        "--concurrency",
        type=positive_int,
        default=4,
        help="parallel senders, like Prometheus' remote_write shards (default: %(default)s)",
    )
    run = parser.add_argument_group("targets")
    run.add_argument(
        "--targets",
        type=target_list,
        default=list(TARGETS),
        help="comma list of watchkeeper,prometheus,victoriametrics (default: all); a peer "
        "whose binary is missing is skipped",
    )
    add_server_arguments(run)
    run.add_argument(
        "--victoriametrics",
        type=Path,
        default=Path("/usr/bin/victoria-metrics"),
        help="%(default)s",
    )
    return parser


@contextmanager
def _interrupt_as_exception() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.duration < args.interval:
        note("--duration must be at least --interval")
        return 2
    command = shlex.join([sys.executable, *(sys.argv if argv is None else [__file__, *argv])])
    note(
        f"building workload: {args.series} series, {format_duration_ms(args.duration)} at "
        f"{format_duration_ms(args.interval)}, seed {args.seed}"
    )
    started = time.perf_counter()
    workload = build_workload(args.series, args.duration, args.interval, args.seed)
    generate_s = time.perf_counter() - started
    encoded = encode_requests(workload, args.samples_per_request)
    kinds = {kind: workload.kinds.count(kind) for kind in ("counter", "gauge", "histogram")}
    out = sys.stdout
    out.write(f"command: {command}\n")
    out.write(
        f"workload: {workload.series} series ({kinds['counter']} counters, {kinds['gauge']} "
        f"gauges, {kinds['histogram']} histogram series) on {len(workload.instance_ts)} targets, "
        f"{workload.steps} steps of {format_duration_ms(workload.interval_ms)} = "
        f"{workload.samples:,} samples, seed {args.seed}\n"
    )
    out.write(
        f"time range: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(workload.start_ms / 1000))}"
        f" .. {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(workload.end_ms / 1000))}\n"
    )
    out.write(
        f"requests: {len(encoded.bodies)} ({encoded.chunks_per_step} per step, "
        f"<= {args.samples_per_request} samples each), {args.concurrency} concurrent senders; "
        f"{human_bytes(encoded.raw_bytes)} protobuf, {human_bytes(encoded.compressed_bytes)} "
        f"snappy; generated in {generate_s:.1f}s, encoded in {encoded.seconds:.1f}s\n"
    )
    out.write(f"machine: {os.cpu_count()} CPUs (the sender shares them with the server)\n")
    out.flush()

    results: list[Result] = []
    try:
        with _interrupt_as_exception():
            for target in args.targets:
                results.append(run_target(target, args, workload, encoded))
    except KeyboardInterrupt:
        note("interrupted; servers stopped" + ("" if args.keep else ", temp dirs removed"))
        return 130
    print_report(results, workload, encoded, args, out)
    out.flush()
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
