"""Scrape and OTLP benchmark: watchkeeper and Prometheus scraping the same 10,000-series
expositions, then OTLP metrics into watchkeeper over HTTP and gRPC.

A target process serves, on --targets loopback ports, an exposition of --series series shaped
like node_exporter's and an instrumented service's (counters, gauges, a histogram; 3-5 labels),
whose values change on every request. Each scraper in turn (a subprocess with a fresh data
dir) scrapes every target every --interval for --seconds after a warm-up; printed per scraper:
samples scraped and stored per second, server CPU-seconds per million samples, the samples a
core could take at that cost, peak RSS, and the mean scrape duration it reports. Then, in this
process, what one scrape of the exposition costs watchkeeper in parsing and storing: the first
scrape of a target (every series new) and the ones after (same layout, new values). Last,
OTLP: pre-encoded ExportMetricsServiceRequests of --series points each (gauges, counters and
explicit-bucket histograms), new timestamps in each, sent for --seconds by two senders over
OTLP/HTTP (protobuf) and then OTLP/gRPC; printed: data points and samples stored per second
and server CPU-seconds per million points.

It prints numbers and never asserts a time. Run `python benchmarks/scrape.py --help`.
"""

from __future__ import annotations

import argparse
import http.server
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import httpx

# benchmarks/ is on sys.path when this file runs as a script (python benchmarks/scrape.py)
from ingest import (
    DEFAULT_WATCHKEEPER,
    Server,
    _version,
    cpu_seconds,
    free_loopback_port,
    memory_kib,
    note,
)
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

from watchkeeper.ingest import DeltaStreams, OtlpFormat, OtlpLimits, OtlpMetricsDecoder
from watchkeeper.ingest.exposition import Format
from watchkeeper.ingest.scrape.config import ScrapeDefaults, parse_scrape_configs
from watchkeeper.ingest.scrape.series import ScrapeLimits, TargetSeries
from watchkeeper.store import MetricsDB, StorageOptions

VARIANTS = 8  # bodies with different values, served in turn


def exposition(series: int, seed: int) -> bytes:
    """`series` sample lines with HELP/TYPE, the values drawn from `seed`."""
    rng = random.Random(seed)
    lines: list[str] = []
    families = max(series // 100, 1)
    left = series
    for family in range(families):
        kind = ("counter", "gauge", "histogram")[family % 3]
        name = f"bench_family_{family}" + ("_total" if kind == "counter" else "")
        lines.append(f"# HELP {name} Benchmark family {family}.")
        lines.append(f"# TYPE {name} {kind}")
        count = left if family == families - 1 else min(100, left)
        left -= count
        for i in range(count):
            labels = (
                f'instance="host-{i % 10}:9100",job="bench",device="dev{i // 10}",'
                f'mode="{("user", "system", "idle", "iowait")[i % 4]}"'
            )
            if kind == "histogram":
                le = ("0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "10", "+Inf")[i % 9]
                lines.append(f'{name}_bucket{{{labels},le="{le}"}} {rng.randint(0, 10**6)}')
            elif kind == "counter":
                lines.append(f"{name}{{{labels}}} {rng.random() * 1e7:.3f}")
            else:
                lines.append(f"{name}{{{labels}}} {rng.random() * 100:.6g}")
    return ("\n".join(lines) + "\n").encode()


def _serve_targets(ports: list[int], series: int, ready: Any) -> None:
    bodies = [exposition(series, seed) for seed in range(VARIANTS)]
    turn = [0]
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            with lock:
                turn[0] += 1
                body = bodies[turn[0] % VARIANTS]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler) for port in ports]
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    ready.set()
    servers[0].serve_forever()


def _scraper(name: str, args: argparse.Namespace, workdir: Path, targets: list[str]) -> Server:
    port = free_loopback_port()
    data = workdir / "data"
    interval = f"{args.interval}s"
    if name == "watchkeeper":
        config = workdir / "watchkeeper.yml"
        config.write_text(
            f"scrape:\n  interval: {interval}\nscrape_configs:\n  - job_name: bench\n"
            f"    static_configs: [{{targets: {targets}}}]\n".replace("'", '"')
        )
        argv = [
            str(args.watchkeeper),
            "serve",
            "--config",
            str(config),
            "--data-dir",
            str(data),
            "--listen",
            f"127.0.0.1:{port}",
        ]
        return Server(
            name,
            argv,
            {"WATCHKEEPER_SELF_MONITORING__ENABLED": "false"},
            workdir,
            data,
            port,
            "/-/ready",
        )
    config = workdir / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n"
        f"scrape_configs:\n  - job_name: bench\n    static_configs: [{{targets: {targets}}}]\n"
    )
    argv = [
        str(args.prometheus),
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return Server(name, argv, {}, workdir, data, port, "/-/ready")


def _instant(client: httpx.Client, url: str, query: str) -> float:
    answer = client.get(f"{url}/api/v1/query", params={"query": query}).json()
    if answer.get("status") != "success":
        raise RuntimeError(f"{query}: {answer}")
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else float("nan")


def measure(name: str, args: argparse.Namespace, targets: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"scrape-{name}-", dir=args.tmpdir) as tmp:
        server = _scraper(name, args, Path(tmp), targets)
        server.start()
        try:
            with httpx.Client(timeout=30) as client:
                time.sleep(args.warmup)
                cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
                scraped0 = _instant(client, server.url, "sum(scrape_samples_scraped)")
                time.sleep(args.seconds)
                cpu1, t1 = cpu_seconds(server.pid), time.perf_counter()
                up = _instant(client, server.url, "sum(up)")
                window = f"{int(t1 - t0)}s"
                stored = _instant(
                    client,
                    server.url,
                    f"sum(sum_over_time(scrape_samples_post_metric_relabeling[{window}]))",
                )
                duration = _instant(
                    client, server.url, f"avg(avg_over_time(scrape_duration_seconds[{window}]))"
                )
            rss = memory_kib(server.pid, "VmHWM") * 1024
        finally:
            server.stop()
    seconds = t1 - t0
    cpu = cpu1 - cpu0
    per_million = cpu / (stored / 1e6) if stored else float("nan")
    return {
        "up": up,
        "per_scrape": scraped0,
        "samples_per_s": stored / seconds,
        "cpu_per_million": per_million,
        "per_core": 1e6 / per_million if per_million else float("nan"),
        "rss_mib": rss / 2**20,
        "scrape_ms": duration * 1000,
    }


def in_process(series: int, rounds: int) -> dict[str, float]:
    """One target's scrapes parsed and stored in this process: the first, and the later ones."""
    bodies = [exposition(series, seed) for seed in range(VARIANTS)]
    job = parse_scrape_configs([{"job_name": "bench"}], ScrapeDefaults())[0]
    with tempfile.TemporaryDirectory(prefix="scrape-inproc-") as tmp:
        store = MetricsDB(
            Path(tmp), StorageOptions(retention_ms=86_400_000, block_duration_ms=7_200_000)
        )
        store.open()
        try:
            target = TargetSeries((("instance", "bench:1"), ("job", "bench")), job, ScrapeLimits())
            at = int(time.time() * 1000)
            started = time.perf_counter()
            store.append("default", target.scrape(bodies[0], Format.TEXT, at).batch)
            first = time.perf_counter() - started
            parse_times, store_times = [], []
            for i in range(1, rounds + 1):
                at += 1000
                started = time.perf_counter()
                outcome = target.scrape(bodies[i % VARIANTS], Format.TEXT, at)
                parsed = time.perf_counter()
                store.append("default", outcome.batch)
                parse_times.append(parsed - started)
                store_times.append(time.perf_counter() - parsed)
        finally:
            store.close()
    parse_s, store_s = statistics.median(parse_times), statistics.median(store_times)
    return {
        "first_ms": first * 1000,
        "parse_ms": parse_s * 1000,
        "store_ms": store_s * 1000,
        "samples_per_s": series / (parse_s + store_s),
    }


def otlp_requests(points: int, count: int, start_ns: int, instance: str = "bench-1") -> list[bytes]:
    """`count` requests of `points` data points each, one second apart, from one instance."""
    bodies = []
    rng = random.Random(1)
    for step in range(count):
        at = start_ns + step * 1_000_000_000
        request = metrics_service_pb2.ExportMetricsServiceRequest()
        resource = request.resource_metrics.add()
        for key, value in (("service.name", "bench"), ("service.instance.id", instance)):
            resource.resource.attributes.add(key=key, value=common_pb2.AnyValue(string_value=value))
        scope = resource.scope_metrics.add()
        families = max(points // 100, 1)
        for family in range(families):
            metric = scope.metrics.add(name=f"bench.family.{family}", unit="s")
            kind = ("gauge", "sum", "histogram")[family % 3]
            if kind == "gauge":
                data: Any = metric.gauge
            elif kind == "sum":
                data = metric.sum
                data.is_monotonic = True
                data.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
            else:
                data = metric.histogram
                data.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
            for i in range(100):
                point = data.data_points.add(time_unix_nano=at, start_time_unix_nano=start_ns)
                for key, value in (("host", f"host-{i % 10}"), ("device", f"dev{i}")):
                    point.attributes.add(key=key, value=common_pb2.AnyValue(string_value=value))
                if kind == "histogram":
                    point.explicit_bounds.extend([0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 50])
                    point.bucket_counts.extend([step + rng.randint(0, 5) for _ in range(10)])
                    point.count = sum(point.bucket_counts)
                    point.sum = point.count * 0.3
                else:
                    point.as_double = step * 10 + rng.random()
        bodies.append(request.SerializeToString())
    return bodies


def measure_otlp(args: argparse.Namespace, transport: str) -> dict[str, float]:
    port, grpc_port = free_loopback_port(), free_loopback_port()
    seconds = args.seconds
    start = time.time_ns() - 3600 * 10**9
    # each sender its own instance, so each sends its series in time order
    bodies = [
        otlp_requests(args.series, int(seconds * 6) + 10, start, f"bench-{n}") for n in (1, 2)
    ]
    with tempfile.TemporaryDirectory(prefix=f"otlp-{transport}-", dir=args.tmpdir) as tmp:
        data = Path(tmp) / "data"
        server = Server(
            "watchkeeper",
            [
                str(args.watchkeeper),
                "serve",
                "--data-dir",
                str(data),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            {
                "WATCHKEEPER_SELF_MONITORING__ENABLED": "false",
                "WATCHKEEPER_OTLP__GRPC_LISTEN": f"127.0.0.1:{grpc_port}",
            },
            Path(tmp),
            data,
            port,
            "/-/ready",
        )
        server.start()
        sent = [0]
        lock = threading.Lock()
        failures: list[str] = []

        def sender(mine: list[bytes]) -> None:
            channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
            export = channel.unary_unary(
                "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
                request_serializer=None,
                response_deserializer=metrics_service_pb2.ExportMetricsServiceResponse.FromString,
            )
            with httpx.Client(timeout=60) as client:
                for body in mine:
                    if time.perf_counter() > deadline:
                        break
                    with lock:
                        sent[0] += 1
                    if transport == "http":
                        answer = client.post(
                            f"{server.url}/v1/metrics",
                            content=body,
                            headers={"Content-Type": "application/x-protobuf"},
                        )
                        if answer.status_code != 200 or answer.content:
                            failures.append(answer.text[:200])
                    else:
                        response = export(body, timeout=60)
                        if response.HasField("partial_success"):
                            failures.append(str(response.partial_success)[:200])
            channel.close()

        try:
            cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
            deadline = t0 + seconds
            threads = [threading.Thread(target=sender, args=(mine,)) for mine in bodies]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            cpu1, t1 = cpu_seconds(server.pid), time.perf_counter()
            rss = memory_kib(server.pid, "VmHWM") * 1024
        finally:
            server.stop()
    points = sent[0] * args.series
    # every answer was a plain success (checked below), so each request stored all it made
    per_request = len(
        OtlpMetricsDecoder(OtlpLimits(), DeltaStreams(1, 1))
        .decode(bodies[0][0], OtlpFormat.PROTOBUF, "bench")
        .batch
    )
    stored = sent[0] * per_request
    if failures:
        note(f"otlp {transport}: {len(failures)} answers were not plain success: {failures[0]}")
    return {
        "points_per_s": points / (t1 - t0),
        "samples_per_s": stored / (t1 - t0),
        "cpu_per_million": (cpu1 - cpu0) / (points / 1e6),
        "rss_mib": rss / 2**20,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/scrape.py",
        description=__doc__.split("\n\n")[0] if __doc__ else "",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "CPU-s/M: the scraper's CPU (utime+stime, /proc) over the measured seconds per\n"
            "million samples it stored (the sum of scrape_samples_post_metric_relabeling over\n"
            "them); per core:\n"
            "1e6 / that, the samples a second one core could scrape at that cost."
        ),
    )
    parser.add_argument("--series", type=int, default=10_000, help="series per exposition")
    parser.add_argument("--targets", type=int, default=10, help="targets, each on its own port")
    parser.add_argument("--interval", type=int, default=1, help="scrape interval, seconds")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time per scraper")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds before measuring")
    parser.add_argument("--rounds", type=int, default=30, help="in-process scrapes to time")
    parser.add_argument("--only", choices=("watchkeeper", "prometheus"), action="append")
    parser.add_argument("--no-otlp", action="store_true", help="skip the OTLP part")
    parser.add_argument("--tmpdir", type=Path, default=None)
    parser.add_argument("--watchkeeper", type=Path, default=DEFAULT_WATCHKEEPER)
    parser.add_argument("--prometheus", type=Path, default=Path("/usr/bin/prometheus"))
    args = parser.parse_args(argv)

    ports = [free_loopback_port() for _ in range(args.targets)]
    targets = [f"127.0.0.1:{port}" for port in ports]
    ready = multiprocessing.Event()
    server = multiprocessing.Process(
        target=_serve_targets, args=(ports, args.series, ready), daemon=True
    )
    server.start()
    ready.wait(60)
    body = exposition(args.series, 0)
    print(
        f"scrape benchmark: {args.targets} targets x {args.series:,} series "
        f"({len(body) / 1024:.0f} KiB each) every {args.interval}s = "
        f"{args.targets * args.series / args.interval:,.0f} samples/s offered; "
        f"{args.seconds:.0f}s measured after {args.warmup:.0f}s; {os.cpu_count()} cores"
    )
    results: dict[str, dict[str, float]] = {}
    try:
        for name in args.only or ("watchkeeper", "prometheus"):
            binary = args.watchkeeper if name == "watchkeeper" else args.prometheus
            note(f"{name}: {_version(name, binary)}")
            results[name] = measure(name, args, targets)
    finally:
        server.terminate()
    print()
    print(
        f"{'scraper':<12} {'up':>4} {'samples/s':>11} {'CPU-s/M':>8} {'per core/s':>11} "
        f"{'peak RSS':>9} {'scrape ms':>9}"
    )
    for name, r in results.items():
        print(
            f"{name:<12} {r['up']:>4.0f} {r['samples_per_s']:>11,.0f} "
            f"{r['cpu_per_million']:>8.2f} {r['per_core']:>11,.0f} {r['rss_mib']:>7.0f} MiB "
            f"{r['scrape_ms']:>9.1f}"
        )
    if len(results) == 2:
        ours, theirs = results["watchkeeper"], results["prometheus"]
        print(
            f"\nCPU per sample, watchkeeper / Prometheus: "
            f"{ours['cpu_per_million'] / theirs['cpu_per_million']:.2f} (goal: <= 1)"
        )
    local = in_process(args.series, args.rounds)
    print(
        f"\nin process, one target of {args.series:,} series: first scrape (all new) "
        f"{local['first_ms']:.0f} ms; later scrapes parse {local['parse_ms']:.2f} ms + store "
        f"{local['store_ms']:.2f} ms = {local['samples_per_s']:,.0f} samples/s"
    )
    if args.no_otlp:
        return 0
    print(
        f"\nOTLP into watchkeeper: requests of {args.series:,} data points (a third "
        f"histograms of 10 buckets), two senders, {args.seconds:.0f}s each"
    )
    print(
        f"{'transport':<10} {'points/s':>10} {'samples/s':>11} {'CPU-s/M points':>15} "
        f"{'peak RSS':>9}"
    )
    for transport in ("http", "grpc"):
        r = measure_otlp(args, transport)
        print(
            f"{transport:<10} {r['points_per_s']:>10,.0f} {r['samples_per_s']:>11,.0f} "
            f"{r['cpu_per_million']:>15.2f} {r['rss_mib']:>7.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
