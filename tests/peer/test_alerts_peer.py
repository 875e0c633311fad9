"""The same rule file on a real Prometheus (Debian's 2.42) and on watchkeeper, fed the same
samples over remote_write: the alerts go through the same states, with the same activeAt,
labels and annotations (watchkeeper's evaluation on arrival, which Prometheus has not, off).

Both evaluate a group at a fixed place in its interval, a hash of its name and file. watchkeeper
uses Prometheus 3.x's hash, and 2.42 hashed the same labels in another encoding. So the test
picks a group name for which both hashes give the same place. Samples change half an interval
after an evaluation, so both servers have them well before the next one."""

from __future__ import annotations

import calendar
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import xxhash
import yaml

from tests.conftest import (
    WRITE_HEADERS,
    ManagedProcess,
    Server,
    free_port,
    snappy_body,
    write_request,
)
from tests.peer.conftest import LOGS
from watchkeeper.rules import RuleGroup
from watchkeeper.rules.manager import group_offset_ms

pytestmark = pytest.mark.timeout(120)
INTERVAL_MS = 1000


def _offset_2_42(name: str, file: str) -> int:
    """Prometheus 2.42's place for a group: labels.Hash of {file, name} in its encoding."""
    key = b"file\xff" + file.encode() + b"\xffname\xff" + name.encode() + b"\xff"
    return xxhash.xxh64_intdigest(key) % (INTERVAL_MS * 1_000_000) // 1_000_000


def _shared_group_name(file: str) -> tuple[str, int]:
    for n in range(200_000):
        name = f"probes-{n}"
        ours = group_offset_ms(RuleGroup(name=name, file=file, rules=()), INTERVAL_MS)
        if ours == _offset_2_42(name, file):
            return name, ours
    raise AssertionError("no group name found where both places agree")


class RulePrometheus(ManagedProcess):
    def __init__(self, binary: str, workdir: Path, rules: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log_path = workdir / "prometheus.log"
        config = workdir / "prometheus.yml"
        config.write_text(
            yaml.safe_dump({"global": {"evaluation_interval": "1s"}, "rule_files": [str(rules)]})
        )
        self.args = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address={self.url.removeprefix('http://')}",
            "--web.enable-remote-write-receiver",
        ]
        self.workdir = workdir

    def start(self) -> RulePrometheus:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=log, cwd=self.workdir)
        self.wait_ready(f"{self.url}/-/ready", 30)
        return self


@pytest.fixture(scope="module")
def both(
    prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, int]]:
    root = tmp_path_factory.mktemp("alerts")
    rules = root / "rules.yml"
    name, offset = _shared_group_name(str(rules))
    rules.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": name,
                        "interval": "1s",
                        "rules": [
                            {
                                "alert": "ProbeDown",
                                "expr": "probe_up == 0",
                                "for": "3s",
                                "labels": {"severity": "page"},
                                "annotations": {
                                    "summary": "{{ $labels.target }} down ({{ $value }})"
                                },
                            },
                            {
                                "alert": "ProbeFlapping",
                                "expr": 'probe_up{target="b"} == 0',
                                "keep_firing_for": "2s",
                            },
                        ],
                    }
                ]
            }
        )
    )
    prometheus = RulePrometheus(prometheus_binary, root, rules)
    server = Server(
        root / "data",
        yaml.safe_dump(
            {
                # Prometheus evaluates only on its turns: so does watchkeeper here, or its
                # threshold rules would turn pending as the samples arrive, between turns
                "rules": {"evaluation_interval": "1s", "evaluate_on_arrival": False},
                "rule_files": [str(rules)],
            }
        ),
    )
    LOGS["prometheus"] = prometheus.log_path
    LOGS["watchkeeper"] = server.log_path
    try:
        prometheus.start()
        server.start()
        yield prometheus.url, server.url, offset
    finally:
        server.stop()
        prometheus.stop()


# seconds after the start: the value each target reports
SCRIPT = {"a": [(0, 1.0), (2, 0.0), (9, 1.0)], "b": [(0, 1.0), (3, 0.0), (5, 1.0)]}
STEPS = 14


def _value(target: str, step: int) -> float:
    return [v for at, v in SCRIPT[target] if at <= step][-1]


def _alerts(url: str) -> dict[tuple[Any, ...], tuple[str, int, tuple[Any, ...]]]:
    answer = httpx.get(f"{url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    out = {}
    for alert in answer:
        key = tuple(sorted(alert["labels"].items()))
        active = alert["activeAt"]
        seconds, _, fraction = active.rstrip("Z").partition(".")
        stamp = calendar.timegm(time.strptime(seconds, "%Y-%m-%dT%H:%M:%S"))
        ms = stamp * 1000 + int((fraction + "000")[:3])
        out[key] = (alert["state"], ms, tuple(sorted(alert["annotations"].items())))
    return out


def test_alert_states_match_prometheus(both: tuple[str, str, int]) -> None:
    prometheus, watchkeeper, offset = both
    seen: dict[str, dict[tuple[Any, ...], list[tuple[str, int, tuple[Any, ...]]]]] = {
        "prometheus": {},
        "watchkeeper": {},
    }
    now = time.time() * 1000
    # half an interval after an evaluation instant, a few seconds from now
    start = now - now % INTERVAL_MS + offset + INTERVAL_MS // 2 + 2 * INTERVAL_MS
    for step in range(STEPS):
        at = start + step * INTERVAL_MS
        while time.time() * 1000 < at:
            for name, url in (("prometheus", prometheus), ("watchkeeper", watchkeeper)):
                for key, state in _alerts(url).items():
                    history = seen[name].setdefault(key, [])
                    if not history or history[-1] != state:
                        history.append(state)
            time.sleep(0.05)
        stamp = int(time.time() * 1000)
        body = snappy_body(
            write_request(
                [
                    ({"__name__": "probe_up", "target": t}, [(stamp, _value(t, step))])
                    for t in SCRIPT
                ]
            )
        )
        for url in (prometheus, watchkeeper):
            answer = httpx.post(f"{url}/api/v1/write", content=body, headers=WRITE_HEADERS)
            assert answer.status_code == 204, answer.text
    assert seen["prometheus"], "Prometheus raised no alert"
    assert seen["watchkeeper"] == seen["prometheus"]
    by_name = {dict(k)["alertname"]: v for k, v in seen["watchkeeper"].items()}
    assert [state for state, _, _ in by_name["ProbeFlapping"]] == ["firing"]
    assert [
        state
        for state, _, _ in seen["watchkeeper"][
            (("alertname", "ProbeDown"), ("severity", "page"), ("target", "a"))
        ]
    ] == ["pending", "firing"]
