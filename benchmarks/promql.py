"""PromQL query benchmark: watchkeeper beside Prometheus on the ingest benchmark's workload.

The workload of benchmarks/ingest.py (same generator, same series, same seed) is built over a
longer time span (by default 26 hours at a 30 s scrape interval, so that 24-hour range queries
have data from their first step on) and loaded through remote_write into watchkeeper and
Prometheus, both running at the same time on loopback ports with fresh temporary data dirs.
Once both are idle, a fixed set of dashboard-style queries runs against both through the HTTP
API, as an instant query and as 1-hour and 24-hour range queries, interleaved (watchkeeper,
Prometheus, watchkeeper, ...) after warm-up runs. Printed per query: the median latency of
each, the ratio (watchkeeper / Prometheus), the peak RSS growth during the query for each
(sampled every few ms), and whether both returned the same number of series and points.

It prints numbers and never asserts a time. Run `python benchmarks/promql.py --help`.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
import psutil

# benchmarks/ is on sys.path when this file runs as a script (python benchmarks/promql.py)
from ingest import (
    EncodedRequests,
    Server,
    Workload,
    _binary,
    _interrupt_as_exception,
    _make_server,
    _version,
    add_server_arguments,
    build_workload,
    cpu_seconds,
    encode_requests,
    format_duration_ms,
    human_bytes,
    note,
    parse_duration_ms,
    positive_int,
    process_tree,
    send_all,
)

TARGETS = ("watchkeeper", "prometheus")
SHORT = {"watchkeeper": "wk", "prometheus": "prom"}
HOUR_MS = 3_600_000
MEM_FLOOR = 2**20  # RSS growth under 1 MiB is not told apart from noise


@dataclass(frozen=True)
class Query:
    name: str
    expr: str


# Dashboard-style queries over the workload's metric families (node_exporter-like hosts and
# instrumented HTTP services). Rate windows are 5m, as most dashboards write them.
QUERIES: tuple[Query, ...] = (
    # counters: rate/increase sums
    Query(
        "cpu_busy_by_instance", 'sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))'
    ),
    Query(
        "cpu_util_pct",
        '100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])))',
    ),
    Query("cpu_by_mode", "sum by (mode) (rate(node_cpu_seconds_total[5m]))"),
    Query("http_rps_by_job", "sum by (job) (rate(http_requests_total[5m]))"),
    Query(
        "http_5xx_ratio",
        'sum by (job) (rate(http_requests_total{code=~"5.."}[5m]))'
        " / sum by (job) (rate(http_requests_total[5m]))",
    ),
    Query("http_increase_1h", "sum by (job, code) (increase(http_requests_total[1h]))"),
    Query("disk_io_irate", "sum by (instance) (irate(node_disk_io_time_seconds_total[5m]))"),
    Query("process_restarts_1h", "sum by (job) (resets(process_cpu_seconds_total[1h]))"),
    # topk / bottomk
    Query("http_topk_handlers", "topk(5, sum by (job, handler) (rate(http_requests_total[5m])))"),
    Query("net_topk_rx", 'topk(10, rate(node_network_receive_bytes_total{device="eth0"}[5m]))'),
    Query(
        "fs_free_bottomk",
        'bottomk(5, node_filesystem_avail_bytes{fstype!="tmpfs"}'
        ' / node_filesystem_size_bytes{fstype!="tmpfs"})',
    ),
    # classic histograms
    Query(
        "http_p99_by_job",
        "histogram_quantile(0.99,"
        " sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    Query(
        "http_p50_by_handler",
        "histogram_quantile(0.5,"
        " sum by (job, handler, le) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    Query(
        "http_p90_per_series",
        "histogram_quantile(0.9, rate(http_request_duration_seconds_bucket[5m]))",
    ),
    Query(
        "http_latency_avg",
        "sum by (job) (rate(http_request_duration_seconds_sum[5m]))"
        " / sum by (job) (rate(http_request_duration_seconds_count[5m]))",
    ),
    # gauges and *_over_time
    Query(
        "mem_used_pct", "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)"
    ),
    Query("load1_max_over_time_1h", "max_over_time(node_load1[1h])"),
    Query("goroutines_avg_over_time", "avg by (job) (avg_over_time(go_goroutines[10m]))"),
    Query("rss_quantile_over_time", "quantile_over_time(0.95, process_resident_memory_bytes[30m])"),
    Query(
        "fs_predict_linear_6h",
        'predict_linear(node_filesystem_avail_bytes{fstype!="tmpfs"}[6h], 4 * 3600)',
    ),
    # binary operators with group_left
    Query(
        "cpu_user_per_core_group_left",
        'rate(node_cpu_seconds_total{mode="user"}[5m])'
        ' / on (instance) group_left count by (instance) (node_cpu_seconds_total{mode="idle"})',
    ),
    Query(
        "http_share_group_left",
        "rate(http_requests_total[5m])"
        " / on (job, instance) group_left sum by (job, instance) (rate(http_requests_total[5m]))",
    ),
    # subqueries
    Query(
        "subquery_max_rps_1h",
        "max_over_time(sum by (job) (rate(http_requests_total[5m]))[1h:1m])",
    ),
    Query(
        "subquery_p99_avg_30m",
        "avg_over_time(histogram_quantile(0.99,"
        " sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))[30m:1m])",
    ),
    # label and time functions, filters
    Query(
        "net_tx_label_replace",
        "label_replace(sum by (instance) (rate(node_network_transmit_bytes_total[5m])) * 8,"
        ' "host", "$1", "instance", "(.*):.*")',
    ),
    Query("up_count_by_job", "count by (job) (up == 1)"),
    Query("uptime_days", "(time() - node_boot_time_seconds) / 86400"),
    Query(
        "http_rps_business_hours",
        "sum by (job) (rate(http_requests_total[5m])) and on () (hour() >= 6 < 22)",
    ),
)


@dataclass(frozen=True)
class Kind:
    """One way every query is run: instant, or a range of `range_ms` at `step_ms`."""

    name: str
    range_ms: int = 0
    step_ms: int = 0


EPILOG = """\
what it does:
  1. builds the ingest benchmark's workload (benchmarks/ingest.py: the same series and values
     for a --seed) over --hours at --interval, ending now, and pre-encodes the remote_write
     requests;
  2. starts watchkeeper and Prometheus (remote-write receiver) on free loopback ports with
     fresh temp data dirs, sends all requests to each in turn, then waits until both are idle
     (background compaction done);
  3. runs every query as an instant query at the end of the data and as range queries over
     the last 1h (step --step-1h) and 24h (step --step-24h), aligned to the step as Grafana
     does; per query and kind: --warmup runs on each target, then --repeat timed runs,
     alternating watchkeeper / Prometheus;
  4. prints per query and kind: the median latency (client wall time of the HTTP request,
     response body read, JSON not parsed), the ratio watchkeeper / Prometheus, the peak RSS
     growth of each server over its RSS just before the query (RSS sampled every --sample-ms
     in a thread; the largest growth of all runs, warm-up included), and the series count
     (a warning when the two disagree on series or points). RSS growth under 1 MiB is
     treated as noise: the memory ratio divides by at least 1 MiB (marked '>' when it had to)
     and shows 'both <1' when neither grew by 1 MiB.

goals: every query at or under Prometheus' latency (ratio <= 1), and the peak memory of every
query at or under Prometheus'.

examples:
  python benchmarks/promql.py                           # the full run (~11 minutes on 2 cores)
  python benchmarks/promql.py --series 1000 --hours 2 --repeat 2 --kinds instant,1h   # smoke
  python benchmarks/promql.py --only histogram --repeat 9   # the histogram queries only
  python benchmarks/promql.py --list                    # print the queries and exit
"""


# ---------------------------------------------------------------------------------------------
# Measuring one query


class PeakRss:
    """The peak RSS (bytes, summed over `pids`) while the `with` block runs, sampled in a thread
    every `interval_s`; `before` is the RSS read on entry."""

    def __init__(self, pids: Sequence[int], interval_s: float) -> None:
        self._procs = []
        for pid in pids:
            with suppress(psutil.Error):
                self._procs.append(psutil.Process(pid))
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.before = 0
        self.peak = 0

    def read(self) -> int:
        total = 0
        for proc in self._procs:
            with suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.peak = max(self.peak, self.read())

    def __enter__(self) -> PeakRss:
        self.before = self.peak = self.read()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.read())

    @property
    def growth(self) -> int:
        return max(self.peak - self.before, 0)


@dataclass
class Outcome:
    """What one target answered to one query of one kind, over all its runs."""

    latencies_ms: list[float] = field(default_factory=list)  # timed runs only
    rss_growth: list[int] = field(default_factory=list)  # every run, warm-up included
    rss_before: int = 0
    series: int | None = None
    points: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.latencies_ms)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.ok else math.nan

    @property
    def peak_growth(self) -> int | None:
        return max(self.rss_growth) if self.rss_growth and not self.error else None


@dataclass
class Target:
    name: str
    server: Server
    workdir: Path
    version: str = ""
    pids: list[int] = field(default_factory=list)
    load_s: float = 0.0
    load_note: str = ""
    rss_after_load: int = 0
    client: httpx.Client | None = None


def _count(body: dict[str, Any]) -> tuple[int, int]:
    """Series and points in a successful query response."""
    data = body["data"]
    kind = data["resultType"]
    result = data["result"]
    if kind in ("scalar", "string"):
        return 1, 1
    if kind == "vector":
        return len(result), len(result)
    return len(result), sum(len(s.get("values", ())) + len(s.get("histograms", ())) for s in result)


def run_query(
    target: Target,
    query: Query,
    kind: Kind,
    at_ms: int,
    sample_s: float,
    outcome: Outcome,
    *,
    timed: bool,
) -> None:
    """One request; adds its latency (if timed) and RSS growth to `outcome`."""
    if outcome.error:
        return
    assert target.client is not None
    if kind.range_ms:
        path = "/api/v1/query_range"
        end = at_ms // kind.step_ms * kind.step_ms
        params = {
            "query": query.expr,
            "start": f"{(end - kind.range_ms) / 1000:.3f}",
            "end": f"{end / 1000:.3f}",
            "step": f"{kind.step_ms / 1000:g}",
        }
    else:
        path = "/api/v1/query"
        params = {"query": query.expr, "time": f"{at_ms / 1000:.3f}"}
    url = target.server.url + path
    try:
        with PeakRss(target.pids, sample_s) as rss:
            started = time.perf_counter()
            # POST with a form body, as Grafana's Prometheus data source sends queries
            response = target.client.post(url, data=params)
            elapsed_ms = (time.perf_counter() - started) * 1000
    except httpx.HTTPError as err:
        outcome.error = f"{type(err).__name__}: {err}"
        return
    if response.status_code != 200:
        outcome.error = f"HTTP {response.status_code}: {response.text.strip()[:300]}"
        return
    try:
        series, points = _count(response.json())
    except (ValueError, KeyError, TypeError) as err:
        outcome.error = f"unexpected response ({type(err).__name__}: {err})"
        return
    outcome.series, outcome.points = series, points
    outcome.rss_growth.append(rss.growth)
    if not outcome.rss_before:
        outcome.rss_before = rss.before
    if timed:
        outcome.latencies_ms.append(elapsed_ms)


# ---------------------------------------------------------------------------------------------
# Servers


def head_span_ms(target: Target) -> int | None:
    """The time span of the server's in-memory head (/api/v1/status/tsdb), None if unknown."""
    assert target.client is not None
    try:
        response = target.client.get(target.server.url + "/api/v1/status/tsdb", timeout=60)
        head = response.json()["data"]["headStats"]
        return int(head["maxTime"]) - int(head["minTime"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def wait_idle(
    targets: Sequence[Target], max_s: float, window_s: float = 2.0, quiet_windows: int = 3
) -> float:
    """Wait until the loaded data is compacted: every head spans at most 1.5 block ranges (3h;
    both servers cut a block off a longer head at their next compaction check, every 30s for
    watchkeeper and every minute for Prometheus) and every server used under 5% of a core for
    `quiet_windows` windows in a row. Returns the seconds waited."""
    started = time.perf_counter()
    quiet = 0
    spans: list[int | None] = []
    while quiet < quiet_windows and time.perf_counter() - started < max_s:
        before = [cpu_seconds(t.server.pid) for t in targets]
        time.sleep(window_s)
        after = [cpu_seconds(t.server.pid) for t in targets]
        busy = max(b - a for a, b in zip(before, after, strict=True)) / window_s
        spans = [head_span_ms(t) for t in targets]
        settled = all(span is None or span <= 3 * HOUR_MS for span in spans)
        quiet = quiet + 1 if busy < 0.05 and settled else 0
    waited = time.perf_counter() - started
    if quiet < quiet_windows:
        shown = ", ".join(
            f"{t.name} head {'?' if span is None else format_duration_ms(span)}"
            for t, span in zip(targets, spans, strict=True)
        )
        note(f"servers not settled after {waited:.0f}s ({shown}); measuring anyway")
    return waited


def start_and_load(
    name: str,
    args: argparse.Namespace,
    workload: Workload,
    encoded: EncodedRequests,
    stack: ExitStack,
) -> Target | None:
    binary = _binary(name, args)
    if binary is None:
        note(f"{name}: skipped, {getattr(args, name)} not found")
        return None
    setattr(args, name, binary)
    workdir = Path(tempfile.mkdtemp(prefix=f"wk-promql-{name}-", dir=args.tmpdir))
    server = _make_server(name, args, workdir, workload.series)
    if name == "watchkeeper" and args.read_cache_bytes is not None:
        server.env["WATCHKEEPER_STORAGE__READ_CACHE_BYTES"] = str(args.read_cache_bytes)
    target = Target(name, server, workdir, version=_version(name, binary))

    def cleanup() -> None:
        server.stop()
        if args.keep:
            note(f"{name}: kept {workdir} (server log: {server.log_path})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    stack.callback(cleanup)
    note(f"{name}: starting {shlex.join(server.argv)}")
    server.start()
    target.pids = process_tree(server.pid)
    stats = send_all(server.url + "/api/v1/write", encoded, args.concurrency, server.alive, name)
    target.load_s = stats.seconds
    if not server.alive():
        raise RuntimeError(f"{name} exited while loading:\n{server.log_tail()}")
    if not stats.complete:
        target.load_note = (
            f"only {stats.ok} of {stats.requests} write requests accepted "
            f"({stats.samples_ok:,} of {workload.samples:,} samples); first error: "
            f"{stats.first_error}"
        )
        note(f"{name}: (!) {target.load_note}")
    target.client = stack.enter_context(httpx.Client(timeout=httpx.Timeout(600.0, connect=10.0)))
    return target


def check_query_api(target: Target, at_ms: int) -> str:
    """Empty when the query endpoints answer, else why not."""
    assert target.client is not None
    try:
        response = target.client.post(
            target.server.url + "/api/v1/query", data={"query": "vector(1)", "time": at_ms / 1000}
        )
    except httpx.HTTPError as err:
        return f"{type(err).__name__}: {err}"
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text.strip()[:200]}"
    return ""


# ---------------------------------------------------------------------------------------------
# Report


def _ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _mib(count: int | None) -> str:
    return "n/a" if count is None else f"{count / 2**20:.1f}"


def _ratio(mine: float, theirs: float) -> float:
    if math.isnan(mine) or math.isnan(theirs) or theirs <= 0:
        return math.nan
    return mine / theirs


def _r(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def _mem_ratio(mine: int | None, theirs: int | None) -> str:
    """watchkeeper's peak RSS growth over Prometheus', the latter floored at MEM_FLOOR (RSS
    growth under it is noise: pages reused from earlier queries); '>' marks a floored one."""
    if mine is None or theirs is None:
        return "n/a"
    if mine < MEM_FLOOR and theirs < MEM_FLOOR:
        return "both <1"
    prefix = ">" if theirs < MEM_FLOOR else ""
    return f"{prefix}{mine / max(theirs, MEM_FLOOR):.2f}"


def _mem_met(mine: int, theirs: int) -> bool:
    return mine <= max(theirs, MEM_FLOOR)


Results = dict[tuple[str, str], dict[str, Outcome]]  # (query, kind) -> target -> outcome


def _check(outcomes: dict[str, Outcome]) -> tuple[str, str]:
    """The series cell and the warning cell of one row."""
    errors = [f"{SHORT[name]} error" for name, o in outcomes.items() if o.error]
    counted = {name: o for name, o in outcomes.items() if o.series is not None}
    series = "/".join(str(o.series) for o in counted.values()) if counted else "n/a"
    if len(counted) == 2:
        wk, prom = counted["watchkeeper"], counted["prometheus"]
        if wk.series != prom.series:
            return series, "; ".join([*errors, "(!) series differ"])
        if wk.points != prom.points:
            errors.append(f"(!) points differ {wk.points}/{prom.points}")
        series = str(wk.series)
    return series, "; ".join(errors)


def print_table(
    results: Results, queries: Sequence[Query], kinds: Sequence[Kind], out: TextIO
) -> None:
    headers = [
        "query",
        "kind",
        "wk ms",
        "prom ms",
        "ratio",
        "wk peak ΔRSS MiB",
        "prom peak ΔRSS MiB",
        "mem ratio",
        "series",
        "check",
    ]
    rows = []
    for query in queries:
        for kind in kinds:
            outcomes = results.get((query.name, kind.name))
            if not outcomes:
                continue
            wk = outcomes.get("watchkeeper", Outcome(error="not run"))
            prom = outcomes.get("prometheus", Outcome(error="not run"))
            wk_mem, prom_mem = wk.peak_growth, prom.peak_growth
            series, check = _check(outcomes)
            rows.append(
                [
                    query.name,
                    kind.name,
                    _ms(wk.median_ms),
                    _ms(prom.median_ms),
                    _r(_ratio(wk.median_ms, prom.median_ms)),
                    _mib(wk_mem),
                    _mib(prom_mem),
                    _mem_ratio(wk_mem, prom_mem),
                    series,
                    check,
                ]
            )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    left = {0, 1, 8, 9}

    def line(cells: list[str]) -> str:
        padded = [
            cell.ljust(w) if i in left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    out.write(line(headers) + "\n")
    out.write(
        "| "
        + " | ".join("-" * w if i in left else "-" * (w - 1) + ":" for i, w in enumerate(widths))
        + " |\n"
    )
    for row in rows:
        out.write(line(row) + "\n")


def print_summary(results: Results, kinds: Sequence[Kind], out: TextIO) -> None:
    out.write("\n== goals, per kind ==\n")
    out.write(
        "latency: queries with ratio <= 1 (watchkeeper at or under Prometheus), geometric mean "
        "and worst ratio; memory: queries whose peak RSS growth is at or under Prometheus' "
        "(or under 1 MiB)\n"
    )
    for kind in kinds:
        ratios: list[tuple[float, str]] = []
        mem_met = mem_total = 0
        errors = 0
        for (name, kind_name), outcomes in results.items():
            if kind_name != kind.name:
                continue
            wk, prom = outcomes.get("watchkeeper"), outcomes.get("prometheus")
            if wk is None or prom is None or not wk.ok or not prom.ok:
                errors += 1
                continue
            ratio = _ratio(wk.median_ms, prom.median_ms)
            if not math.isnan(ratio):
                ratios.append((ratio, name))
            wk_mem, prom_mem = wk.peak_growth, prom.peak_growth
            if wk_mem is not None and prom_mem is not None:
                mem_total += 1
                mem_met += _mem_met(wk_mem, prom_mem)
        if not ratios:
            out.write(f"{kind.name:>7}: no query measured on both\n")
            continue
        met = sum(r <= 1.0 for r, _ in ratios)
        geomean = math.exp(sum(math.log(r) for r, _ in ratios) / len(ratios))
        worst, worst_name = max(ratios)
        out.write(
            f"{kind.name:>7}: latency {met}/{len(ratios)} met, geomean ratio {geomean:.2f}, "
            f"worst {worst:.2f} ({worst_name}); memory {mem_met}/{mem_total} met"
            + (f"; {errors} not measured on both" if errors else "")
            + "\n"
        )


def print_errors(results: Results, out: TextIO) -> None:
    lines = [
        f"  {query} {kind} on {target}: {o.error}"
        for (query, kind), outcomes in results.items()
        for target, o in outcomes.items()
        if o.error
    ]
    if lines:
        out.write("\n== errors ==\n" + "\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------
# Main


def kind_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ("instant", "1h", "24h")]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown kind(s) {unknown}; choose from instant,1h,24h")
    return list(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/promql.py",
        description="Load the ingest benchmark's workload into watchkeeper and Prometheus, run "
        "a fixed set of dashboard-style PromQL queries (instant, 1h and 24h ranges) on both, "
        "and compare median latency and peak memory per query.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    workload = parser.add_argument_group("workload (the generator of benchmarks/ingest.py)")
    workload.add_argument(
        "--series",
        type=positive_int,
        default=10_000,
        help="number of series, all active for the whole span (default: %(default)s)",
    )
    workload.add_argument(
        "--hours",
        type=positive_int,
        default=26,
        help="time span of the samples in hours, ending now; 24h range queries need 24 plus "
        "their longest window (6h for predict_linear, 1h elsewhere) (default: %(default)s)",
    )
    workload.add_argument(
        "--interval",
        type=parse_duration_ms,
        default="30s",
        help="scrape interval: one sample per series per interval (default: 30s; 26h at 30s "
        "for 10,000 series is 31.2 M samples)",
    )
    workload.add_argument(
        "--seed", type=int, default=1, help="seed of the value generator (default: %(default)s)"
    )
    workload.add_argument(
        "--concurrency",
        type=positive_int,
        default=4,
        help="parallel remote_write senders while loading (default: %(default)s)",
    )
    workload.add_argument(
        "--samples-per-request",
        type=positive_int,
        default=2000,
        help="samples per write request while loading (default: %(default)s)",
    )
    queries = parser.add_argument_group("queries")
    queries.add_argument(
        "--repeat",
        type=positive_int,
        default=5,
        help="timed runs per query, kind and target; the median is reported (default: %(default)s)",
    )
    queries.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed runs per query, kind and target before the timed ones (default: %(default)s)",
    )
    queries.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="run only queries whose name or expression contains TEXT (repeatable: any of them)",
    )
    queries.add_argument(
        "--kinds",
        type=kind_list,
        default=["instant", "1h", "24h"],
        help="comma list of instant,1h,24h (default: all three)",
    )
    queries.add_argument(
        "--step-1h",
        type=parse_duration_ms,
        default="30s",
        help="step of the 1h range queries (default: 30s, Grafana's step for 1h at a 30s "
        "scrape interval)",
    )
    queries.add_argument(
        "--step-24h",
        type=parse_duration_ms,
        default="5m",
        help="step of the 24h range queries (default: 5m)",
    )
    queries.add_argument(
        "--sample-ms",
        type=positive_int,
        default=5,
        help="RSS sampling interval during a query, in ms (default: %(default)s)",
    )
    queries.add_argument("--list", action="store_true", help="print the queries and exit")
    run = parser.add_argument_group("servers")
    add_server_arguments(run)
    run.add_argument(
        "--idle-timeout",
        type=float,
        default=600.0,
        help="longest wait, in seconds, for both servers to go idle after loading (default: "
        "%(default)s)",
    )
    run.add_argument(
        "--read-cache-bytes",
        type=int,
        default=None,
        help="watchkeeper's storage.read_cache_bytes, the decoded samples it keeps for queries "
        "that read them again (default: the server's, 64 MiB). The timed runs follow a "
        "warm-up, as dashboard refreshes follow each other; 0 measures every read decoding "
        "afresh",
    )
    run.add_argument(
        "--api-wait",
        type=float,
        default=0.0,
        help="if watchkeeper's /api/v1/query does not answer yet, retry for this many seconds "
        "before giving up (default: %(default)s)",
    )
    return parser


def selected_queries(only: Sequence[str]) -> list[Query]:
    if not only:
        return list(QUERIES)
    needles = [text.lower() for text in only]
    return [q for q in QUERIES if any(n in q.name.lower() or n in q.expr.lower() for n in needles)]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    queries = selected_queries(args.only)
    if args.list:
        for query in QUERIES:
            print(f"{query.name:<30} {query.expr}")
        return 0
    if not queries:
        note(f"no query matches --only {args.only}; see --list")
        return 2
    all_kinds = {
        "instant": Kind("instant"),
        "1h": Kind("1h", HOUR_MS, args.step_1h),
        "24h": Kind("24h", 24 * HOUR_MS, args.step_24h),
    }
    kinds = [all_kinds[name] for name in args.kinds]
    duration_ms = args.hours * HOUR_MS
    if duration_ms < args.interval:
        note("--hours must cover at least one --interval")
        return 2
    if "24h" in args.kinds and args.hours < 25:
        note(f"note: {args.hours}h of data; 24h range queries start where there is none")
    args.victoriametrics = Path("/nonexistent")  # _make_server/_binary read it; never started

    began = time.perf_counter()
    command = shlex.join([sys.executable, *(sys.argv if argv is None else [__file__, *argv])])
    note(
        f"building workload: {args.series} series, {args.hours}h at "
        f"{format_duration_ms(args.interval)}, seed {args.seed}"
    )
    workload = build_workload(args.series, duration_ms, args.interval, args.seed)
    encoded = encode_requests(workload, args.samples_per_request)
    prepare_s = time.perf_counter() - began
    counts = {kind: workload.kinds.count(kind) for kind in ("counter", "gauge", "histogram")}
    out = sys.stdout
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    out.write(f"command: {command}\n")
    out.write(
        f"workload: {workload.series} series ({counts['counter']} counters, {counts['gauge']} "
        f"gauges, {counts['histogram']} histogram series) on {len(workload.instance_ts)} "
        f"targets, {workload.steps} steps of {format_duration_ms(workload.interval_ms)} = "
        f"{workload.samples:,} samples, seed {args.seed}; built and encoded in {prepare_s:.0f}s\n"
        f"time range: {time.strftime(stamp, time.gmtime(workload.start_ms / 1000))} .. "
        f"{time.strftime(stamp, time.gmtime(workload.end_ms / 1000))}\n"
    )
    out.write(
        f"queries: {len(queries)} x {', '.join(k.name for k in kinds)} "
        f"(1h step {format_duration_ms(args.step_1h)}, 24h step "
        f"{format_duration_ms(args.step_24h)}); {args.warmup} warm-up + {args.repeat} timed "
        f"runs each, alternating targets; RSS sampled every {args.sample_ms} ms\n"
        f"machine: {os.cpu_count()} CPUs (client and both servers share them)\n"
        "watchkeeper storage.read_cache_bytes: "
        f"{'default' if args.read_cache_bytes is None else args.read_cache_bytes}\n"
    )
    out.flush()

    at_ms = workload.end_ms
    results: Results = {}
    targets: list[Target] = []
    try:
        with _interrupt_as_exception(), ExitStack() as stack:
            for name in TARGETS:
                target = start_and_load(name, args, workload, encoded, stack)
                if target is not None:
                    targets.append(target)
            if not any(t.name == "watchkeeper" for t in targets):
                note("watchkeeper could not be started; nothing to measure")
                return 1
            del encoded  # the request bodies are no longer needed
            note("waiting for both servers to go idle (compaction of the loaded data)")
            idle_s = wait_idle(targets, args.idle_timeout)
            wk = next(t for t in targets if t.name == "watchkeeper")
            deadline = time.perf_counter() + args.api_wait
            while problem := check_query_api(wk, at_ms):
                if time.perf_counter() >= deadline:
                    note(f"watchkeeper's query API does not answer: {problem}")
                    return 1
                note(f"watchkeeper's query API does not answer yet ({problem}); retrying")
                time.sleep(30)
            for target in targets:
                target.rss_after_load = PeakRss(target.pids, 1).read()
            out.write(
                "\n".join(
                    f"{t.name} ({t.version}): loaded in {t.load_s:.0f}s, RSS "
                    f"{human_bytes(t.rss_after_load)} before the queries"
                    + (f"; (!) {t.load_note}" if t.load_note else "")
                    for t in targets
                )
                + f"\nwaited {idle_s:.0f}s for both to go idle\n"
            )
            out.flush()
            query_began = time.perf_counter()
            sample_s = args.sample_ms / 1000
            total = len(queries) * len(kinds)
            for index, query in enumerate(queries, 1):
                for kind in kinds:
                    outcomes = {t.name: Outcome() for t in targets}
                    results[(query.name, kind.name)] = outcomes
                    plan = [False] * args.warmup + [True] * args.repeat
                    for timed in plan:
                        for target in targets:
                            run_query(
                                target,
                                query,
                                kind,
                                at_ms,
                                sample_s,
                                outcomes[target.name],
                                timed=timed,
                            )
                    medians = ", ".join(
                        f"{SHORT[name]} {_ms(o.median_ms)} ms" for name, o in outcomes.items()
                    )
                    note(f"[{index}/{len(queries)}] {query.name} {kind.name}: {medians}")
            query_s = time.perf_counter() - query_began
    except KeyboardInterrupt:
        note("interrupted; servers stopped" + ("" if args.keep else ", temp dirs removed"))
        return 130
    except (RuntimeError, httpx.HTTPError, OSError) as err:
        note(f"FAILED: {type(err).__name__}: {err}")
        return 1

    out.write(f"\n== latency (median of {args.repeat}) and peak memory per query ==\n")
    print_table(results, queries, kinds, out)
    print_summary(results, kinds, out)
    print_errors(results, out)
    out.write(
        f"\n{total} query/kind pairs measured in {query_s:.0f}s; total runtime "
        f"{time.perf_counter() - began:.0f}s\n"
    )
    out.flush()
    return 1 if any(o.error for outcomes in results.values() for o in outcomes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
