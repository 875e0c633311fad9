"""Native histograms: remote_write them into watchkeeper and Prometheus in the same run, then
query both.

Each series is an integer native histogram (schema 3 by default, so eight buckets per power of
two) observing a log-normal latency: every scrape adds a few hundred observations spread over
about `--buckets` populated buckets, so counts only grow. Both servers get the same bodies
(the ingest benchmark's sender: per-series order kept, `--concurrency` requests in flight).

Printed per server: load time, histogram samples per second, server CPU-seconds per million
histogram samples, peak RSS (VmHWM); then per query the median latency of `--repeat` runs and
the ratio watchkeeper / Prometheus, and whether both answered the same number of series.
Nothing is asserted.

    make peers                                        # Debian package prometheus
    .venv/bin/python benchmarks/native_histograms.py
    .venv/bin/python benchmarks/native_histograms.py --series 200 --hours 1   # quick
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import cramjam
import httpx
import numpy as np

# benchmarks/ is on sys.path when this file runs as a script (python benchmarks/...py)
from ingest import (
    EncodedRequests,
    Server,
    _binary,
    _make_server,
    cpu_seconds,
    format_duration_ms,
    memory_kib,
    note,
    parse_duration_ms,
    positive_int,
    send_all,
)

from watchkeeper.ingest.proto import remote_pb2

HOUR_MS = 3_600_000
QUERIES = [
    ("selector", "bench_rpc_seconds"),
    ("count_rate", "sum(histogram_count(rate(bench_rpc_seconds[5m])))"),
    ("sum_rate", "sum by (job) (rate(bench_rpc_seconds[5m]))"),
    ("p99", "histogram_quantile(0.99, sum by (job) (rate(bench_rpc_seconds[5m])))"),
    ("p50_per_series", "histogram_quantile(0.5, rate(bench_rpc_seconds[5m]))"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--series", type=positive_int, default=1000, help="histogram series")
    parser.add_argument("--hours", type=positive_int, default=2, help="span of the samples")
    parser.add_argument(
        "--interval", type=parse_duration_ms, default=30_000, help="one sample per interval"
    )
    parser.add_argument("--schema", type=int, default=3, help="exponential schema, -4..8")
    parser.add_argument(
        "--buckets", type=positive_int, default=20, help="populated buckets per histogram"
    )
    parser.add_argument("--samples-per-request", type=positive_int, default=500)
    parser.add_argument("--concurrency", type=positive_int, default=2)
    parser.add_argument("--repeat", type=positive_int, default=5, help="timed runs per query")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--watchkeeper",
        type=Path,
        default=Path(sys.executable).with_name("watchkeeper"),
        help="watchkeeper executable",
    )
    parser.add_argument("--prometheus", type=Path, default=Path("prometheus"))
    return parser


def encode(args: argparse.Namespace, end_ms: int) -> tuple[EncodedRequests, int]:
    """The write requests in send order (step-major, then chunk of series), and the samples."""
    rng = np.random.default_rng(args.seed)
    steps = args.hours * HOUR_MS // args.interval
    start_ms = end_ms - steps * args.interval
    first = rng.integers(-10, 10, size=args.series)  # each series' lowest populated bucket
    counts = np.zeros((args.series, args.buckets), dtype=np.int64)
    zero = np.zeros(args.series, dtype=np.int64)
    sums = np.zeros(args.series)
    bounds = list(range(0, args.series, args.samples_per_request))
    bodies: list[bytes] = []
    raw = 0
    started = time.perf_counter()
    for step in range(steps):
        # a few hundred observations per scrape, log-normally spread over the buckets
        added = rng.poisson(30, size=(args.series, args.buckets)) * np.exp(
            -0.5 * ((np.arange(args.buckets) - args.buckets / 2) / (args.buckets / 5)) ** 2
        ).astype(np.int64)
        counts += added
        zero += rng.integers(0, 3, size=args.series)
        sums += added.sum(axis=1) * 0.05
        at = start_ms + step * args.interval
        for lo in bounds:
            request = remote_pb2.WriteRequest()
            for i in range(lo, min(lo + args.samples_per_request, args.series)):
                ts = request.timeseries.add()
                ts.labels.add(name="__name__", value="bench_rpc_seconds")
                ts.labels.add(name="instance", value=f"host-{i}:9100")
                ts.labels.add(name="job", value=f"svc-{i % 10}")
                row = counts[i].tolist()
                deltas = [row[0]] + [b - a for a, b in itertools.pairwise(row)]
                ts.histograms.add(
                    count_int=int(counts[i].sum() + zero[i]),
                    sum=float(sums[i]),
                    schema=args.schema,
                    zero_threshold=2.0**-20,
                    zero_count_int=int(zero[i]),
                    positive_spans=[remote_pb2.BucketSpan(offset=int(first[i]), length=len(row))],
                    positive_deltas=deltas,
                    timestamp=at,
                )
            payload = request.SerializeToString()
            raw += len(payload)
            bodies.append(bytes(cramjam.snappy.compress_raw(payload)))
    sizes = [min(args.samples_per_request, args.series - lo) for lo in bounds]
    return EncodedRequests(bodies, sizes, raw, time.perf_counter() - started), steps * args.series


def median_ms(client: httpx.Client, url: str, params: dict[str, str], repeat: int) -> float:
    times = []
    for _ in range(repeat + 1):  # one warm-up
        began = time.perf_counter()
        answer = client.post(url, data=params)
        answer.read()
        times.append(time.perf_counter() - began)
        if answer.status_code != 200:
            raise RuntimeError(f"{url} {params['query']}: {answer.status_code} {answer.text}")
    return statistics.median(times[1:]) * 1000


def series_count(client: httpx.Client, url: str, params: dict[str, str]) -> int:
    return len(client.post(url, data=params).json()["data"]["result"])


def main() -> int:
    args = build_parser().parse_args()
    end_ms = (int(time.time() * 1000) // args.interval) * args.interval
    note(
        f"encoding {args.series} histogram series x {args.hours}h at "
        f"{format_duration_ms(args.interval)}, schema {args.schema}, {args.buckets} buckets"
    )
    encoded, samples = encode(args, end_ms)
    print(
        f"workload: {samples:,} histogram samples in {len(encoded.bodies)} requests "
        f"({encoded.compressed_bytes / 1e6:.1f} MB snappy), encoded in {encoded.seconds:.0f}s"
    )
    servers: dict[str, Server] = {}
    with ExitStack() as stack:
        for target in ("watchkeeper", "prometheus"):
            binary = _binary(target, args)
            if binary is None:
                note(f"{target}: not found, skipped")
                continue
            setattr(args, target, binary)
            workdir = Path(tempfile.mkdtemp(prefix=f"wk-nh-{target}-"))
            stack.callback(shutil.rmtree, workdir, True)
            server = _make_server(target, args, workdir, args.series)
            if target == "prometheus":
                server.argv.append("--enable-feature=native-histograms")
            stack.callback(server.stop)
            server.start()
            cpu_before = cpu_seconds(server.pid)
            stats = send_all(
                server.url + "/api/v1/write", encoded, args.concurrency, server.alive, target
            )
            cpu = cpu_seconds(server.pid) - cpu_before
            rss = memory_kib(server.pid, "VmHWM") / 1024
            print(
                f"{target}: loaded in {stats.seconds:.1f}s ({samples / stats.seconds:,.0f} "
                f"histogram samples/s), {cpu / samples * 1e6:.1f} CPU-s per million, "
                f"peak RSS {rss:.0f} MiB, {stats.ok}/{stats.requests} requests accepted"
            )
            servers[target] = server
        at = f"{end_ms / 1000:.3f}"
        kinds = {
            "instant": ("/api/v1/query", {"time": at}),
            "1h": (
                "/api/v1/query_range",
                {"start": f"{(end_ms - HOUR_MS) / 1000:.3f}", "end": at, "step": "60"},
            ),
        }
        print(f"\n{'query':<16} {'kind':<8} {'wk ms':>8} {'prom ms':>8} {'ratio':>6}  series")
        with httpx.Client(timeout=600) as client:
            for name, query in QUERIES:
                for kind, (path, extra) in kinds.items():
                    params = {"query": query, **extra}
                    result = {
                        target: median_ms(client, server.url + path, params, args.repeat)
                        for target, server in servers.items()
                    }
                    counts = {
                        target: series_count(client, server.url + path, params)
                        for target, server in servers.items()
                    }
                    wk, prom = result.get("watchkeeper", 0.0), result.get("prometheus", 0.0)
                    ratio = f"{wk / prom:.2f}" if prom else "-"
                    same = "same" if len(set(counts.values())) == 1 else f"differ {counts}"
                    print(f"{name:<16} {kind:<8} {wk:>8.1f} {prom:>8.1f} {ratio:>6}  {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
