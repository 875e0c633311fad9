"""Nothing acknowledged is lost on kill -9 (DESIGN §1.3, §4).

A client keeps writing while the server is killed with SIGKILL at random moments. After every
restart: every acknowledged sample is readable, no (series, timestamp) appears twice, and
nothing is stored that the client did not send (values bit-exact). Like Prometheus, the client
resends what was in flight at the kill; the server must take the resend without duplicating.
Blocks are cut every few seconds of the test, so kills also land in compaction and checkpoints.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import WRITE_HEADERS, Server, snappy_body, write_request

KILLS = 20
SERIES = 48
SENDERS = 3
SAMPLES_PER_SERIES = 8  # per request
STEP_MS = 5_000
SEED = 20261122
# Blocks of 2 minutes: a block is cut every ~4 requests per series; samples more than a minute
# behind the newest are out of bounds (Prometheus' rule), so the senders move in lockstep.
CONFIG = "storage:\n  block_duration: 2m\n  compaction_check_interval: 200ms\n"

pytestmark = pytest.mark.system


@dataclass
class Sender:
    """Owns a disjoint set of series and writes them in time order, one request at a time."""

    index: int
    series: list[str]
    start_ts: int
    rng: random.Random
    last_round: int = -1
    pending: bytes | None = None  # the request in flight when the server died
    pending_samples: list[tuple[str, int, float]] = field(default_factory=list)

    def request_for(self, round_no: int) -> tuple[bytes, list[tuple[str, int, float]]]:
        """Round r covers the same time span for every sender."""
        self.last_round = round_no
        first_ts = self.start_ts + round_no * SAMPLES_PER_SERIES * STEP_MS
        samples = []
        rows = []
        for name in self.series:
            points = []
            for k in range(SAMPLES_PER_SERIES):
                ts = first_ts + k * STEP_MS
                value = self.rng.random() * 1e6
                points.append((ts, value))
                samples.append((name, ts, value))
            rows.append(({"__name__": "durable", "s": name}, points))
        return snappy_body(write_request(rows)), samples


class Ledger:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: dict[tuple[str, int], float] = {}
        self.acked: dict[tuple[str, int], float] = {}

    def record_sent(self, samples: list[tuple[str, int, float]]) -> None:
        with self.lock:
            for name, ts, value in samples:
                self.sent[(name, ts)] = value

    def record_acked(self, samples: list[tuple[str, int, float]]) -> None:
        with self.lock:
            for name, ts, value in samples:
                self.acked[(name, ts)] = value


def _send_until_stopped(
    server: Server,
    sender: Sender,
    ledger: Ledger,
    stop: threading.Event,
    step: threading.Barrier,
    first_round: int,
) -> None:
    """Send rounds first_round, first_round + 1, ... in lockstep with the other senders."""
    round_no = first_round
    with httpx.Client(base_url=server.url, timeout=10) as client:
        while not stop.is_set():
            sender.pending, sender.pending_samples = sender.request_for(round_no)
            round_no += 1
            ledger.record_sent(sender.pending_samples)
            try:
                response = client.post(
                    "/api/v1/write", content=sender.pending, headers=WRITE_HEADERS
                )
            except httpx.TransportError:
                step.abort()
                return  # the server died; the request stays pending for the resend
            assert response.status_code == 204, response.text
            ledger.record_acked(sender.pending_samples)
            sender.pending = None
            try:
                step.wait(timeout=30)
            except threading.BrokenBarrierError:
                return


def _stored(server: Server) -> list[tuple[str, int, float]]:
    response = httpx.get(f"{server.url}/api/v1/export", params={"match[]": "durable"}, timeout=30)
    assert response.status_code == 200
    rows = []
    for line in response.text.splitlines():
        series = json.loads(line)
        name = series["metric"]["s"]
        rows += [
            (name, ts, v) for ts, v in zip(series["timestamps"], series["values"], strict=True)
        ]
    return rows


def _check(server: Server, ledger: Ledger, cycle: int) -> int:
    stored = _stored(server)
    seen: dict[tuple[str, int], float] = {}
    for name, ts, value in stored:
        key = (name, ts)
        assert key not in seen, f"cycle {cycle}: {key} stored twice"
        seen[key] = value
        assert key in ledger.sent, f"cycle {cycle}: {key} stored but never sent"
        assert ledger.sent[key] == value, (
            f"cycle {cycle}: {key} has {value}, sent {ledger.sent[key]}"
        )
    missing = [key for key in ledger.acked if key not in seen]
    assert not missing, (
        f"cycle {cycle}: {len(missing)} acknowledged samples lost, e.g. {missing[:3]}"
    )
    return len(stored)


def test_acknowledged_samples_survive_sigkill(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    print(f"seed {SEED}")
    start_ts = (int(time.time()) - 2 * 86_400) * 1000
    names = [f"s{i:02d}" for i in range(SERIES)]
    senders = [
        Sender(j, names[j::SENDERS], start_ts, random.Random(SEED + j)) for j in range(SENDERS)
    ]
    ledger = Ledger()
    server = Server(tmp_path / "data", CONFIG)
    stored = 0
    try:
        for cycle in range(KILLS + 1):
            server.start()
            stored = _check(server, ledger, cycle)
            # resend what was in flight, as a remote_write client retries
            with httpx.Client(base_url=server.url, timeout=10) as client:
                for sender in senders:
                    if sender.pending is not None:
                        response = client.post(
                            "/api/v1/write", content=sender.pending, headers=WRITE_HEADERS
                        )
                        assert response.status_code == 204, f"resend: {response.text}"
                        ledger.record_acked(sender.pending_samples)
                        sender.pending = None
            if cycle == KILLS:
                break
            stop = threading.Event()
            step = threading.Barrier(SENDERS)
            # Senders stopped in different rounds; all go on from the newest, so none falls
            # more than a round behind (a gap in the data is fine, stale samples are not).
            first_round = max(s.last_round for s in senders) + 1
            threads = [
                threading.Thread(
                    target=_send_until_stopped, args=(server, s, ledger, stop, step, first_round)
                )
                for s in senders
            ]
            for thread in threads:
                thread.start()
            time.sleep(rng.uniform(0.05, 1.5))
            server.kill()
            stop.set()
            step.abort()
            for thread in threads:
                thread.join(timeout=30)
        # a graceful stop and start keeps everything too
        server.stop()
        server.start()
        stored = _check(server, ledger, KILLS + 1)
    except AssertionError:
        print(server.log()[-5000:])
        raise
    finally:
        server.stop()
    blocks = list((tmp_path / "data" / "metrics" / "blocks" / "default").glob("*/meta.json"))
    print(f"{KILLS} kills, {len(ledger.acked)} acknowledged, {stored} stored, {len(blocks)} blocks")
    assert len(ledger.acked) > 1000 and blocks, "the test must exercise writes and compaction"
