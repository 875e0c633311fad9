"""Durability under SIGKILL: acknowledged samples survive, exactly once, and nothing else appears.

A remote_write client keeps sending batches while the server is killed with SIGKILL at random
moments, KILLS times. The client works like Prometheus' queue manager: the series are split
over SHARDS shards, each shard sends its own batches one at a time and in time order (so at
most SHARDS requests are in flight), and a request that got no answer is resent after the
server is back. After every restart the stored samples, read back with /api/v1/export, must

  (a) include every sample whose request was answered 204,
  (b) hold no (series, timestamp) twice,
  (c) hold only samples the client sent, with bit-exact values. A sample of a request in flight
      at the kill may or may not be stored.

Every other cycle the in-flight requests are resent before the senders go on, and the store must
then hold exactly what was sent: the resend is deduplicated, not stored twice. In the other
cycles the shards resend them themselves, so kills can also land on a resend. The samples'
timestamps run ahead quickly (ROUND_MS of sample time per request) with 5m blocks and a short
compaction check interval, so blocks are cut and the WAL checkpointed many times during the
test and kills land in those too. One graceful stop (SIGTERM) and restart closes the test.

The run is seeded (printed; override with DURABILITY_TEST_SEED).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import WRITE_HEADERS, Server, snappy_body, write_request

KILLS = 20
SERIES = 48
SHARDS = 3  # concurrent senders, each owning SERIES // SHARDS series: at most 3 in flight
STEP_MS = 2_000  # sample interval of every series
ROUND_MS = 30_000  # sample time one request covers per series: 15 samples x 16 series = 240
# A shard may run at most MAX_SKEW rounds ahead of the slowest one. The store refuses samples
# more than half a block (2.5 minutes here) behind the tenant's newest, so the oldest sample a
# shard still has to (re)send must stay well within that of the newest any shard has sent.
MAX_SKEW = 2
KILL_DELAY_S = (0.05, 1.5)
DEFAULT_SEED = 20261123
METRIC = "durability_probe"
CONFIG = """\
storage:
  block_duration: 5m
  compaction_check_interval: 100ms
"""

pytestmark = pytest.mark.system

Key = tuple[str, int]  # (series label, timestamp ms)


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


@dataclass
class Request:
    """One write request as sent, kept byte for byte so a resend is identical."""

    ident: int
    shard: int
    round_no: int
    body: bytes
    samples: list[tuple[str, int, float]]
    sent_in_cycle: int
    acked_in_cycle: int | None = None


@dataclass
class Ledger:
    """What the client sent and what the server acknowledged."""

    sent: dict[Key, tuple[float, int]] = field(default_factory=dict)  # -> (value, request id)
    acked: set[Key] = field(default_factory=set)
    requests: dict[int, Request] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    idents: Iterator[int] = field(default_factory=itertools.count)

    def next_ident(self) -> int:
        with self.lock:
            return next(self.idents)

    def record_sent(self, request: Request) -> None:
        with self.lock:
            self.requests[request.ident] = request
            for name, ts, value in request.samples:
                key = (name, ts)
                assert key not in self.sent, f"test bug: {key} generated twice"
                self.sent[key] = (value, request.ident)

    def record_acked(self, request: Request, cycle: int) -> None:
        with self.lock:
            request.acked_in_cycle = cycle
            self.acked.update((name, ts) for name, ts, _ in request.samples)


@dataclass
class Shard:
    """A disjoint set of series, written in time order, one request at a time."""

    index: int
    series: list[str]
    start_ts: int
    rng: random.Random
    counters: dict[str, float] = field(default_factory=dict)
    done: int = 0  # rounds 0 .. done-1 are acknowledged
    pending: Request | None = None  # round `done`, sent but not answered (resent first)

    def build(self, ident: int, cycle: int) -> Request:
        first_ts = self.start_ts + self.done * ROUND_MS
        rows = []
        samples = []
        for name in self.series:
            points = []
            for ts in range(first_ts, first_ts + ROUND_MS, STEP_MS):
                value = self._value(name)
                points.append((ts, value))
                samples.append((name, ts, value))
            rows.append((_labels(name), points))
        body = snappy_body(write_request(rows))
        return Request(ident, self.index, self.done, body, samples, cycle)

    def _value(self, name: str) -> float:
        """Finite values with many significant digits, of three kinds so the value codec sees
        noise, growing counters and long runs of repeats; never -0.0."""
        kind = int(name[1:]) % 3
        if kind == 0:
            return self.rng.random() * 1e6
        if kind == 1:
            self.counters[name] = self.counters.get(name, 0.0) + self.rng.random() * 1000
            return self.counters[name]
        if self.rng.random() < 0.9 and name in self.counters:
            return self.counters[name]
        self.counters[name] = self.rng.uniform(-1e12, 1e12) or 1.0
        return self.counters[name]


def _labels(name: str) -> dict[str, str]:
    return {"__name__": METRIC, "job": "durability", "series": name}


class Traffic:
    """The shards' threads during one server lifetime, until the kill."""

    def __init__(self, server: Server, shards: list[Shard], ledger: Ledger, cycle: int) -> None:
        self.server = server
        self.shards = shards
        self.ledger = ledger
        self.cycle = cycle
        self.stop = threading.Event()
        self.progress = threading.Condition()
        self.errors: list[str] = []
        self.threads = [
            threading.Thread(target=self._run, args=(shard,), name=f"shard-{shard.index}")
            for shard in shards
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def halt(self) -> None:
        self.stop.set()
        with self.progress:
            self.progress.notify_all()
        for thread in self.threads:
            thread.join(timeout=60)
            assert not thread.is_alive(), f"{thread.name} did not stop"

    def _may_send(self, shard: Shard) -> bool:
        return shard.done < min(s.done for s in self.shards) + MAX_SKEW

    def _run(self, shard: Shard) -> None:
        try:
            with httpx.Client(base_url=self.server.url, timeout=30) as client:
                while not self.stop.is_set():
                    if not self._send_one(shard, client):
                        return
        except Exception as err:  # reported by the main thread
            self.errors.append(f"shard {shard.index}: {err!r}")
            self.stop.set()

    def _send_one(self, shard: Shard, client: httpx.Client) -> bool:
        """Send the shard's pending request, or its next one; False once the server is gone."""
        with self.progress:
            while not self.stop.is_set() and not self._may_send(shard):
                self.progress.wait(timeout=1)
            if self.stop.is_set():
                return False
            if shard.pending is None:
                request = shard.build(self.ledger.next_ident(), self.cycle)
                self.ledger.record_sent(request)
                shard.pending = request
            request = shard.pending
        try:
            response = client.post("/api/v1/write", content=request.body, headers=WRITE_HEADERS)
        except httpx.TransportError:
            return False  # killed while in flight: stays pending, resent after the restart
        if response.status_code != 204:
            self.errors.append(
                f"shard {shard.index} round {request.round_no} (request {request.ident}): "
                f"HTTP {response.status_code}: {response.text.strip()}"
            )
            self.stop.set()
            return False
        self.ledger.record_acked(request, self.cycle)
        with self.progress:
            shard.pending = None
            shard.done += 1
            self.progress.notify_all()
        return True


def _export(server: Server) -> list[tuple[dict[str, str], list[int], list[float]]]:
    response = httpx.get(
        f"{server.url}/api/v1/export",
        params={"match[]": f'{{__name__="{METRIC}"}}'},
        timeout=120,
    )
    assert response.status_code == 200, f"export: HTTP {response.status_code}: {response.text}"
    rows = []
    for line in response.text.splitlines():
        if line.strip():
            item = json.loads(line)
            rows.append((item["metric"], item["timestamps"], item["values"]))
    return rows


def _describe(ledger: Ledger, key: Key) -> str:
    if key not in ledger.sent:
        return f"{key} (never sent)"
    value, ident = ledger.sent[key]
    req = ledger.requests[ident]
    acked = "never acked" if req.acked_in_cycle is None else f"acked in cycle {req.acked_in_cycle}"
    return (
        f"series={key[0]} ts={key[1]} value={value!r}: request {ident} (shard {req.shard}, "
        f"round {req.round_no}, sent in cycle {req.sent_in_cycle}, {acked})"
    )


def _verify(server: Server, ledger: Ledger, when: str, exact: bool) -> tuple[int, set[Key]]:
    """Check the invariants against the store; `exact`: everything sent must be stored (no
    request is unanswered). Returns the number of stored samples and the stored keys."""
    rows = _export(server)
    problems: list[str] = []
    stored: dict[Key, float] = {}
    duplicates: Counter[Key] = Counter()
    unsorted: list[str] = []
    for metric, stamps, values in rows:
        name = metric.get("series", "")
        if metric != _labels(name):
            problems.append(f"unexpected series {metric} ({len(stamps)} samples)")
            continue
        if len(stamps) != len(values):
            problems.append(f"series {name}: {len(stamps)} timestamps, {len(values)} values")
        if any(b <= a for a, b in itertools.pairwise(stamps)):
            unsorted.append(name)
        for ts, value in zip(stamps, values, strict=False):
            key = (name, ts)
            if key in stored:
                duplicates[key] += 1
            stored[key] = float(value)
    if duplicates:
        examples = "\n    ".join(_describe(ledger, k) for k in sorted(duplicates)[:10])
        problems.append(
            f"(b) {len(duplicates)} (series, timestamp) pairs stored more than once, "
            f"e.g.\n    {examples}"
        )
    if unsorted:
        problems.append(f"timestamps not strictly increasing in series {sorted(set(unsorted))}")
    never_sent = sorted(k for k in stored if k not in ledger.sent)
    if never_sent:
        examples = "\n    ".join(f"{k} value={stored[k]!r}" for k in never_sent[:10])
        problems.append(
            f"(c) {len(never_sent)} stored samples were never sent, e.g.\n    {examples}"
        )
    wrong = sorted(
        k for k in stored if k in ledger.sent and _bits(stored[k]) != _bits(ledger.sent[k][0])
    )
    if wrong:
        examples = "\n    ".join(
            f"{_describe(ledger, k)}; stored {stored[k]!r}" for k in wrong[:10]
        )
        problems.append(
            f"(c) {len(wrong)} stored values differ from those sent, e.g.\n    {examples}"
        )
    expected = ledger.sent.keys() if exact else ledger.acked
    missing = sorted(k for k in expected if k not in stored)
    if missing:
        lost_requests = sorted({ledger.sent[k][1] for k in missing})
        examples = "\n    ".join(_describe(ledger, k) for k in missing[:10])
        what = "sent (and since resent and acknowledged)" if exact else "acknowledged"
        problems.append(
            f"(a) {len(missing)} {what} samples are missing, from {len(lost_requests)} "
            f"requests {lost_requests[:20]}, e.g.\n    {examples}"
        )
    if problems:
        raise AssertionError(f"{when}:\n  " + "\n  ".join(problems))
    return len(stored), set(stored)


def _resend_pending(server: Server, shards: list[Shard], ledger: Ledger, cycle: int) -> int:
    """Resend what was in flight at the kill, as the client does once the server answers."""
    resent = 0
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for shard in shards:
            request = shard.pending
            if request is None:
                continue
            response = client.post("/api/v1/write", content=request.body, headers=WRITE_HEADERS)
            assert response.status_code == 204, (
                f"cycle {cycle}: resend of request {request.ident} (shard {shard.index}, round "
                f"{request.round_no}): HTTP {response.status_code}: {response.text.strip()}"
            )
            ledger.record_acked(request, cycle)
            shard.pending = None
            shard.done += 1
            resent += 1
    return resent


def _in_flight_stored(shards: list[Shard], stored: set[Key]) -> str:
    """How much of each request in flight at the kill the restarted server holds."""
    parts = []
    for shard in shards:
        if shard.pending is not None:
            keys = [(name, ts) for name, ts, _ in shard.pending.samples]
            held = sum(key in stored for key in keys)
            parts.append(f"{held}/{len(keys)}")
    return ", ".join(parts) or "none"


def _blocks(data_dir: Path) -> int:
    return len(list(data_dir.glob("**/blocks/*/*/meta.json")))


@pytest.mark.timeout(900)
def test_acknowledged_samples_survive_sigkill(tmp_path: Path) -> None:
    seed = int(os.environ.get("DURABILITY_TEST_SEED", DEFAULT_SEED))
    print(f"\ndurability test seed {seed} (set DURABILITY_TEST_SEED to repeat another)")
    rng = random.Random(seed)
    # Two days back, on a block boundary's minute: far inside retention, and even at the
    # fastest pace the samples cannot run into the future during the test.
    start_ts = (int(time.time()) - 2 * 86_400) // 60 * 60_000
    names = [f"s{i:02d}" for i in range(SERIES)]
    shards = [
        Shard(j, names[j::SHARDS], start_ts, random.Random(f"{seed}/{j}")) for j in range(SHARDS)
    ]
    ledger = Ledger()
    data_dir = tmp_path / "data"
    server = Server(data_dir, CONFIG)
    began = time.monotonic()
    try:
        for cycle in range(KILLS + 1):
            started = time.monotonic()
            server.start()
            ready_s = time.monotonic() - started
            count, stored = _verify(server, ledger, f"cycle {cycle}, after restart", exact=False)
            in_flight = _in_flight_stored(shards, stored)
            resent = ""
            if cycle % 2 == 0 or cycle == KILLS:
                n = _resend_pending(server, shards, ledger, cycle)
                count, _ = _verify(server, ledger, f"cycle {cycle}, after resend", exact=True)
                resent = f", {n} resent"
            line = (
                f"cycle {cycle:2d}: ready in {ready_s:.1f}s, {len(ledger.acked)} acked, "
                f"{count} stored, in flight at kill stored {in_flight}{resent}, "
                f"{_blocks(data_dir)} blocks"
            )
            if cycle == KILLS:
                print(line)
                break
            traffic = Traffic(server, shards, ledger, cycle)
            traffic.start()
            delay = rng.uniform(*KILL_DELAY_S)
            time.sleep(delay)
            server.kill()
            traffic.halt()
            print(f"{line}; killed after {delay:.2f}s")
            assert not traffic.errors, f"cycle {cycle}: write failed:\n" + "\n".join(traffic.errors)
        server.stop()  # SIGTERM: a graceful shutdown and start keep everything too
        server.start()
        count, _ = _verify(server, ledger, "after SIGTERM and restart", exact=True)
        print(f"graceful restart: {count} stored")
    except BaseException:
        log = server.log()
        tracebacks = len(re.findall(r"^Traceback", log, re.MULTILINE))
        print(f"\nseed {seed}; server log {server.log_path} ({tracebacks} tracebacks), tail:")
        print(log[-8000:])
        raise
    finally:
        server.stop()
    blocks = _blocks(data_dir)
    print(
        f"{KILLS} SIGKILLs, {len(ledger.requests)} requests, {len(ledger.acked)} samples acked, "
        f"{blocks} blocks, {time.monotonic() - began:.0f}s"
    )
    assert count == len(ledger.sent)
    assert len(ledger.acked) > 20_000, "too little was written to mean anything"
    assert blocks > 0, "no block was cut: the kills never met a compaction"
