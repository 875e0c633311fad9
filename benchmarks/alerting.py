"""Alert latency benchmark: from a sample crossing a threshold to the webhook's notification.

watchkeeper runs as a subprocess with --rules alerting rules (`bench_signal{rule="i"} > 0.5`,
`for: 0s`, in --groups groups at --interval) and a built-in Alertmanager routing every alert
to a webhook on loopback (group_by [alertname], group_wait 0s). Beside the probes, the ingest
benchmark's workload (benchmarks/ingest.py's generator) is remote-written live every 15 s, and
every bench_signal series is kept fed with 0, so the rules read a store under load.

A probe writes bench_signal{rule=r} = 1 for a rule not probed before; its clock starts when
remote_write answers (the sample is durable) and stops when the webhook receives the firing
notification of alert Threshold_r. The notification's startsAt is the evaluation that saw the
sample, which splits the latency in two: waiting for that evaluation (the sample's arrival
triggers it with rules.evaluate_on_arrival, the default; with --turns-only, up to an interval),
then evaluating and notifying. Printed: p50/p90/p99/max of each, and the rule-evaluation
CPU per cycle (server CPU over a quiet window, per evaluation interval) with the groups'
evaluation times from /api/v1/rules.

It prints numbers and never asserts a time. Run `python benchmarks/alerting.py --help`.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cramjam
import httpx
import numpy as np

# benchmarks/ is on sys.path when this file runs as a script (python benchmarks/alerting.py)
from ingest import (
    HEADERS,
    Server,
    Workload,
    build_workload,
    cpu_seconds,
    format_duration_ms,
    free_loopback_port,
    note,
    parse_duration_ms,
    positive_int,
)

from watchkeeper.ingest.proto import remote_pb2

DEFAULT_WATCHKEEPER = Path(sys.executable).parent / "watchkeeper"
WORKLOAD_INTERVAL_S = 15.0
FEED_INTERVAL_S = 60.0  # every bench_signal series gets a fresh 0 this often (lookback is 5m)

EPILOG = """\
examples:
  python benchmarks/alerting.py                               # 10,000 rules, 1 s interval
  python benchmarks/alerting.py --rules 1000 --probes 100     # a quick run
  python benchmarks/alerting.py --interval 2s --groups 200    # another layout
  python benchmarks/alerting.py --turns-only                  # no evaluation on arrival
"""


class Sink:
    """The webhook: records when each alert's first firing notification arrived."""

    def __init__(self) -> None:
        self.fired: dict[str, tuple[float, str]] = {}  # alertname -> (received, startsAt)
        self.notifications = 0
        lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received = time.time()
                payload = json.loads(body)
                with lock:
                    sink.notifications += 1
                    for alert in payload["alerts"]:
                        name = alert["labels"]["alertname"]
                        if alert["status"] == "firing" and name not in sink.fired:
                            sink.fired[name] = (received, alert["startsAt"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def write_body(series: list[tuple[tuple[str, str], ...]], values: Any, at_ms: int) -> bytes:
    request = remote_pb2.WriteRequest()
    for labels, value in zip(series, values, strict=True):
        ts = request.timeseries.add()
        for name, label_value in labels:
            ts.labels.add(name=name, value=label_value)
        ts.samples.add(value=float(value), timestamp=at_ms)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def signal_series(rule: int) -> tuple[tuple[str, str], ...]:
    return (("__name__", "bench_signal"), ("rule", str(rule)))


def write_files(
    workdir: Path, rules: int, groups: int, interval_ms: int, hook: str, on_arrival: bool
) -> Path:
    per_group = max(rules // groups, 1)
    lines = ["groups:"]
    for g in range(0, rules, per_group):
        lines.append(f"  - name: bench-{g // per_group}")
        lines.append("    rules:")
        for r in range(g, min(g + per_group, rules)):
            lines.append(f"      - alert: Threshold_{r}")
            lines.append(f'        expr: bench_signal{{rule="{r}"}} > 0.5')
    (workdir / "rules.yml").write_text("\n".join(lines) + "\n")
    (workdir / "alertmanager.yml").write_text(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n"
        "  group_interval: 1s\n  repeat_interval: 24h\n"
        f"receivers:\n  - name: hook\n    webhook_configs: [{{url: '{hook}', "
        "send_resolved: false}]\n"
    )
    config = workdir / "watchkeeper.yml"
    config.write_text(
        f"rules:\n  evaluation_interval: {format_duration_ms(interval_ms)}\n"
        f"  evaluate_on_arrival: {'true' if on_arrival else 'false'}\n"
        "rule_files: [rules.yml]\nalerting:\n  alertmanager_config: alertmanager.yml\n"
    )
    return config


class Feeder:
    """Background remote_write: the ingest workload every 15 s and bench_signal's zeros every
    minute, live timestamps. Probes write through the same client pool."""

    def __init__(self, url: str, workload: Workload, rules: int) -> None:
        self.url = url
        self.workload = workload
        self.rules = rules
        self.stop = threading.Event()
        self.errors = 0
        self.probed: set[int] = set()
        self.probing = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.feed_signals()
        self._thread.start()

    def feed_signals(self) -> None:
        with self.probing:  # a probe's 1 must not be followed by an older 0
            self._feed_signals()

    def _feed_signals(self) -> None:
        quiet = [r for r in range(self.rules) if r not in self.probed]
        now = int(time.time() * 1000)
        with httpx.Client(timeout=60) as client:
            for i in range(0, len(quiet), 2000):
                chunk = quiet[i : i + 2000]
                body = write_body([signal_series(r) for r in chunk], [0.0] * len(chunk), now)
                self.check(client.post(self.url, content=body, headers=HEADERS))

    def check(self, answer: httpx.Response) -> None:
        if answer.status_code != 204:
            self.errors += 1
            note(f"feeder write answered {answer.status_code}: {answer.text[:300]}")

    def _run(self) -> None:
        step = 0
        next_feed = time.monotonic() + FEED_INTERVAL_S
        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                values = self.workload.values[:, step % self.workload.steps]
                body = write_body(self.workload.series_labels, values, int(time.time() * 1000))
                self.check(client.post(self.url, content=body, headers=HEADERS))
                step += 1
                if time.monotonic() >= next_feed:
                    self.feed_signals()
                    next_feed += FEED_INTERVAL_S
                self.stop.wait(WORKLOAD_INTERVAL_S)


def percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = np.sort(np.asarray(values))
    p = [float(np.percentile(ordered, q)) for q in (50, 90, 99)]
    return (
        f"p50 {p[0] * 1000:7.0f} ms   p90 {p[1] * 1000:7.0f} ms   "
        f"p99 {p[2] * 1000:7.0f} ms   max {ordered[-1] * 1000:7.0f} ms"
    )


def parse_go_time(text: str) -> float:
    from datetime import datetime  # noqa: PLC0415

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run(args: argparse.Namespace) -> int:
    sink = Sink()
    workdir = Path(tempfile.mkdtemp(prefix="wk-alerting-bench-"))
    config = write_files(
        workdir, args.rules, args.groups, args.interval, sink.url, not args.turns_only
    )
    port = free_loopback_port()
    server = Server(
        "watchkeeper",
        [
            str(args.watchkeeper),
            "serve",
            "--config",
            str(config),
            "--data-dir",
            str(workdir / "data"),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        {"WATCHKEEPER_SELF_MONITORING__ENABLED": "false"},
        workdir,
        workdir / "data",
        port,
        "/-/ready",
    )
    note(f"building the ingest workload ({args.series} series)")
    workload = build_workload(args.series, 15 * 60_000, 15_000, args.seed)
    note(
        f"starting watchkeeper with {args.rules} rules in {args.groups} groups every "
        f"{format_duration_ms(args.interval)} (data in {workdir})"
    )
    server.start()
    write_url = f"{server.url}/api/v1/write"
    feeder = Feeder(write_url, workload, args.rules)
    try:
        feeder.start()
        # let every group evaluate a few times over the fed data before measuring
        time.sleep(max(3 * args.interval / 1000, 5.0))
        window = max(10 * args.interval / 1000, 10.0)
        before = cpu_seconds(server.pid)
        time.sleep(window)
        cycle_cpu = (cpu_seconds(server.pid) - before) / (window / (args.interval / 1000))
        groups = httpx.get(f"{server.url}/api/v1/rules", timeout=60).json()["data"]["groups"]
        eval_times = [g["evaluationTime"] for g in groups]

        rng = random.Random(args.seed)
        order = rng.sample(range(args.rules), min(args.probes, args.rules))
        acked: dict[str, float] = {}
        note(f"probing {len(order)} rules, one every {args.spacing:.2f} s")
        with httpx.Client(timeout=30) as client:
            for rule in order:
                with feeder.probing:
                    feeder.probed.add(rule)
                    body = write_body([signal_series(rule)], [1.0], int(time.time() * 1000))
                    answer = client.post(write_url, content=body, headers=HEADERS)
                if answer.status_code != 204:
                    note(f"probe write failed: {answer.status_code} {answer.text[:200]}")
                    continue
                acked[f"Threshold_{rule}"] = time.time()
                time.sleep(args.spacing)
        deadline = time.time() + 10 * args.interval / 1000 + 10
        while time.time() < deadline and len(set(acked) & set(sink.fired)) < len(acked):
            time.sleep(0.1)
    finally:
        feeder.stop.set()
        server.stop()
        sink.server.shutdown()

    total, waiting, notifying = [], [], []
    for name, t_ack in acked.items():
        if name not in sink.fired:
            continue
        received, starts_at = sink.fired[name]
        evaluated = parse_go_time(starts_at)
        total.append(received - t_ack)
        waiting.append(max(evaluated - t_ack, 0.0))
        notifying.append(received - evaluated)
    missing = len(acked) - len(total)
    print(
        f"alerting benchmark: {args.rules} rules in {args.groups} groups, evaluation every "
        f"{format_duration_ms(args.interval)}"
        f"{' (turns only)' if args.turns_only else ' and on arrival'}, "
        f"ingest workload {args.series} series every 15 s"
    )
    print(f"  probes: {len(acked)} acknowledged, {len(total)} notified, {missing} never notified")
    print(f"  ack -> webhook:           {percentiles(total)}")
    print(f"    ack -> evaluation:      {percentiles(waiting)}")
    print(f"    evaluation -> webhook:  {percentiles(notifying)}")
    print(
        f"  rule evaluation CPU per cycle: {cycle_cpu:.3f} CPU-s (server, quiet window, "
        f"ingest included) for {args.rules} rules = {cycle_cpu / args.rules * 1e6:.0f} us/rule"
    )
    if eval_times:
        print(
            f"  group evaluation time (/api/v1/rules): median "
            f"{statistics.median(eval_times) * 1000:.1f} ms, max {max(eval_times) * 1000:.1f} ms"
            f", sum {sum(eval_times):.3f} s per cycle"
        )
    print(f"  notifications received: {sink.notifications}; feeder errors: {feeder.errors}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rules", type=positive_int, default=10_000, help="alerting rules")
    parser.add_argument("--groups", type=positive_int, default=100, help="rule groups")
    parser.add_argument(
        "--interval", type=parse_duration_ms, default=1000, help="evaluation interval (1s)"
    )
    parser.add_argument("--probes", type=positive_int, default=200, help="threshold crossings")
    parser.add_argument("--spacing", type=float, default=0.2, help="seconds between probes (0.2)")
    parser.add_argument(
        "--series", type=positive_int, default=10_000, help="ingest workload series (10,000)"
    )
    parser.add_argument("--seed", type=int, default=1, help="workload and probe order seed")
    parser.add_argument(
        "--turns-only",
        action="store_true",
        help="rules.evaluate_on_arrival: false (rules wait for their group's turn, as in "
        "Prometheus)",
    )
    parser.add_argument(
        "--watchkeeper", type=Path, default=DEFAULT_WATCHKEEPER, help="the watchkeeper binary"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
