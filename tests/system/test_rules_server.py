"""Rule files in the running server: evaluated on their interval, alerts and rules in
Prometheus' API shapes, ALERTS queryable, rule files followed as they change, and an invalid
file refused with its problems at start and at reload."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import WRITE_HEADERS, Server, free_port, snappy_body, write_request
from tests.system.test_scrape import wait_for

pytestmark = pytest.mark.timeout(120)

RULES = """
groups:
  - name: availability
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: InstanceDown
        expr: up == 0
        labels: {severity: page}
        annotations:
          summary: "{{ $labels.instance }} down ({{ $value }})"
"""


def _write(server: Server, value: float) -> None:
    now = int(time.time() * 1000)
    body = snappy_body(
        write_request(
            [
                ({"__name__": "up", "job": "api", "instance": "a"}, [(now, value)]),
                ({"__name__": "up", "job": "api", "instance": "b"}, [(now, 1.0)]),
            ]
        )
    )
    answer = httpx.post(f"{server.url}/api/v1/write", content=body, headers=WRITE_HEADERS)
    assert answer.status_code == 204, answer.text


def _get(server: Server, path: str, **params: Any) -> Any:
    answer = httpx.get(f"{server.url}{path}", params=params, timeout=10).json()
    assert answer["status"] == "success", answer
    return answer["data"]


def test_rules_evaluate_and_show_as_prometheus_shows_them(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = start_server(
        config="rules:\n  evaluation_interval: 1s\nrule_files: [rules/*.yml]\n",
    )
    rules_dir = server.data_dir.parent / "rules"
    rules_dir.mkdir()
    (rules_dir / "a.yml").write_text(RULES)
    # the file appeared after the start: it is picked up as it changes
    _write(server, 0.0)

    def firing() -> list[dict[str, Any]]:
        _write(server, 0.0)
        return _get(server, "/api/v1/alerts")["alerts"]  # type: ignore[no-any-return]

    (alert,) = wait_for(firing)
    # the alert may fire on arrival before the group's first turn: wait for a turn too
    wait_for(
        lambda: not _get(server, "/api/v1/rules")["groups"][0]["lastEvaluation"].startswith("0001")
    )
    assert alert["labels"] == {
        "alertname": "InstanceDown",
        "instance": "a",
        "job": "api",
        "severity": "page",
    }
    assert alert["annotations"] == {"summary": "a down (0)"}
    assert (alert["state"], alert["value"]) == ("firing", "0e+00")
    assert alert["activeAt"].endswith("Z")

    (group,) = _get(server, "/api/v1/rules")["groups"]
    assert (group["name"], group["file"], group["interval"]) == (
        "availability",
        str(rules_dir / "a.yml"),
        1.0,
    )
    record, alerting = group["rules"]
    assert (record["type"], record["name"], record["health"]) == (
        "recording",
        "job:up:sum",
        "ok",
    )
    assert alerting["type"] == "alerting" and alerting["state"] == "firing"
    assert alerting["duration"] == 0 and alerting["labels"] == {"severity": "page"}
    assert [
        r["name"] for r in _get(server, "/api/v1/rules", type="record")["groups"][0]["rules"]
    ] == ["job:up:sum"]
    assert _get(server, "/api/v1/query", query='ALERTS{alertstate="firing"}')["result"]
    assert wait_for(lambda: _get(server, "/api/v1/query", query="job:up:sum")["result"])

    # an invalid change keeps the rules running; POST /-/reload says why it refused
    (rules_dir / "a.yml").write_text(RULES.replace("up == 0", "up ==="))
    answer = httpx.post(f"{server.url}/-/reload", timeout=10)
    assert answer.status_code == 500
    assert "could not parse expression" in answer.text
    assert _get(server, "/api/v1/rules")["groups"]


def test_an_invalid_rule_file_stops_the_start(tmp_path: Path) -> None:
    rules = tmp_path / "bad.yml"
    rules.write_text(RULES.replace("record: job:up:sum", "record: 'job:up{x}'"))
    config = tmp_path / "watchkeeper.yml"
    config.write_text("rule_files: [bad.yml]\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "watchkeeper",
            "serve",
            "--config",
            str(config),
            "--data-dir",
            str(tmp_path / "data"),
            "--listen",
            f"127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"WATCHKEEPER_OTLP__GRPC_LISTEN": "127.0.0.1:0", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert f"watchkeeper: rule_files: tenant default: {rules}: group " in result.stderr
    assert "braces present in the recording rule name" in result.stderr
    assert "Traceback" not in result.stderr
