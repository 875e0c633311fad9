"""The built-in Alertmanager in the running server: a rule's alert reaches a webhook, the API v2
answers as Alertmanager's, silences and acknowledgements survive kill -9, and the history
records what happened."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import WRITE_HEADERS, Server, WebhookSink, snappy_body, write_request
from watchkeeper.rules import RuleGroup
from watchkeeper.rules.manager import group_offset_ms

pytestmark = pytest.mark.timeout(120)

ALERTMANAGER = """
route:
  receiver: team
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: team
    webhook_configs: [{url: '%(sink)s/team'}]
  - name: primary
    webhook_configs: [{url: '%(sink)s/primary'}]
"""

RULES = """
groups:
  - name: always
    rules:
      - alert: AlwaysFiring
        expr: vector(1)
        labels: {severity: page, category: infrastructure}
        annotations:
          runbook_url: https://runbooks.example/always
"""


def _config(tmp_path: Path, sink: WebhookSink, extra: str = "") -> str:
    (tmp_path / "alertmanager.yml").write_text(ALERTMANAGER % {"sink": sink.url})
    (tmp_path / "rules.yml").write_text(RULES)
    return (
        "rules:\n  evaluation_interval: 1s\n  external_labels: {cluster: eu}\n"
        "  external_url: http://wk.example\n"  # also the Alertmanager's, unless it has its own
        "rule_files: [rules.yml]\n"
        "alerting:\n  alertmanager_config: alertmanager.yml\n" + extra
    )


def _epoch(text: str) -> float:
    """An RFC 3339 time of a notification, in seconds."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def test_a_rule_alert_reaches_the_webhook_as_prometheus_would_send_it(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    sink = WebhookSink()
    server = start_server(config=_config(tmp_path, sink))
    ((path, body),) = sink.wait(1)
    payload = json.loads(body)
    assert path == "/team"
    assert payload["groupKey"] == '{}:{alertname="AlwaysFiring"}'
    assert payload["externalURL"] == "http://wk.example"
    (alert,) = payload["alerts"]
    assert alert["labels"] == {
        "alertname": "AlwaysFiring",
        "category": "infrastructure",
        "cluster": "eu",  # the rules' external label, added as Prometheus' notifier adds it
        "severity": "page",
    }
    assert alert["status"] == "firing" and alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["generatorURL"] == "http://wk.example/graph?g0.expr=vector%281%29&g0.tab=1"
    # the API v2 shows it, with its receiver
    (shown,) = httpx.get(f"{server.url}/api/v2/alerts", timeout=10).json()
    assert shown["receivers"] == [{"name": "team"}]
    assert shown["status"] == {"inhibitedBy": [], "silencedBy": [], "state": "active"}
    # and the history has it firing and notified, with the fields people look for
    events = httpx.get(
        f"{server.url}/api/v1/alerts/history",
        params={"filter": 'alertname="AlwaysFiring"'},
        timeout=10,
    ).json()
    kinds = [e["event"] for e in events]
    assert kinds[:2] == ["firing", "notified"], kinds
    assert events[0]["severity"] == "page" and events[0]["category"] == "infrastructure"
    assert events[0]["runbook_url"] == "https://runbooks.example/always"
    assert events[1]["integration"] == "team/webhook[0]"


def test_the_api_v2_silences_and_alerts(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    sink = WebhookSink()
    (tmp_path / "alertmanager.yml").write_text(ALERTMANAGER % {"sink": sink.url})
    server = start_server(config="alerting:\n  alertmanager_config: alertmanager.yml\n")
    url = f"{server.url}/api/v2"
    now = int(time.time() * 1000)
    bad = httpx.post(f"{url}/alerts", json=[{"labels": {}}, {"labels": {"alertname": "Ok"}}])
    assert bad.status_code == 400 and "at least one label pair required" in bad.json()
    alerts = [
        {"labels": {"alertname": "Disk", "instance": "a"}, "startsAt": _iso(now)},
        {"labels": {"alertname": "Disk", "instance": "b"}, "startsAt": _iso(now)},
    ]
    assert httpx.post(f"{url}/alerts", json=alerts).status_code == 200
    silence = {
        "matchers": [{"name": "instance", "value": "b", "isRegex": False, "isEqual": True}],
        "startsAt": _iso(now),
        "endsAt": _iso(now + 3_600_000),
        "createdBy": "alice",
        "comment": "replacing the disk",
    }
    created = httpx.post(f"{url}/silences", json=silence)
    assert created.status_code == 200, created.text
    silence_id = created.json()["silenceID"]
    shown = {
        a["labels"].get("instance", "-"): a["status"] for a in httpx.get(f"{url}/alerts").json()
    }
    assert sorted(shown) == ["-", "a", "b"]  # the valid alert of the refused request was kept
    assert shown["a"]["state"] == "active"
    assert shown["b"] == {"inhibitedBy": [], "silencedBy": [silence_id], "state": "suppressed"}
    unsilenced = httpx.get(f"{url}/alerts", params={"silenced": "false"}).json()
    assert sorted(a["labels"].get("instance", "-") for a in unsilenced) == ["-", "a"]
    filtered = httpx.get(f"{url}/silences", params={"filter": 'instance="b"'}).json()
    assert [s["id"] for s in filtered] == [silence_id]
    assert httpx.get(f"{url}/silences", params={"filter": 'instance="c"'}).json() == []
    groups = {g["labels"]["alertname"]: g for g in httpx.get(f"{url}/alerts/groups").json()}
    assert sorted(groups) == ["Disk", "Ok"]
    assert groups["Disk"]["receiver"] == {"name": "team"}
    assert sorted(a["labels"]["instance"] for a in groups["Disk"]["alerts"]) == ["a", "b"]
    assert httpx.get(f"{url}/receivers").json() == [{"name": "team"}, {"name": "primary"}]
    status = httpx.get(f"{url}/status").json()
    assert status["cluster"]["status"] == "disabled"
    assert "webhook_configs" in status["config"]["original"]
    assert httpx.delete(f"{url}/silence/{silence_id}").status_code == 200
    expired = httpx.get(f"{url}/silence/{silence_id}").json()
    assert expired["status"]["state"] == "expired"
    again = httpx.delete(f"{url}/silence/{silence_id}")
    assert again.status_code == 400 and "already expired" in again.json()
    assert httpx.get(f"{url}/silence/nope").status_code == 404


def test_silences_and_acknowledgements_survive_kill_9(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    sink = WebhookSink()
    escalation = (
        "  escalation_policies:\n"
        "    - receiver: team\n"
        "      levels: [{after: 2s, receiver: primary}]\n"
    )
    server = start_server(config=_config(tmp_path, sink, escalation))
    url = f"{server.url}/api/v2"
    sink.wait(1)
    now = int(time.time() * 1000)
    silence = {
        "matchers": [{"name": "alertname", "value": "Other", "isRegex": False, "isEqual": True}],
        "startsAt": _iso(now),
        "endsAt": _iso(now + 3_600_000),
        "createdBy": "alice",
        "comment": "kept",
    }
    silence_id = httpx.post(f"{url}/silences", json=silence).json()["silenceID"]
    posted = {"labels": {"alertname": "Other", "from": "api"}, "startsAt": _iso(now)}
    assert httpx.post(f"{url}/alerts", json=[posted]).status_code == 200
    (group,) = [
        g
        for g in httpx.get(f"{url}/alerts/groups").json()
        if g["labels"] == {"alertname": "AlwaysFiring"}
    ]
    acked = httpx.post(
        f"{url}/alerts/groups/{group['id']}/ack", json={"by": "bob", "comment": "looking"}
    )
    assert acked.status_code == 200, acked.text
    assert acked.json()["acknowledged"]["by"] == "bob"
    time.sleep(3)  # past the escalation's 2 s: acknowledged, so primary is never paged
    assert [p for p, _ in sink.received] == ["/team"]
    assert httpx.post(f"{url}/alerts/groups/0000/ack", json={}).status_code == 404

    server.kill()
    server.start()
    assert httpx.get(f"{url}/silence/{silence_id}").json()["comment"] == "kept"
    # the alert posted to the API (acknowledged with 200) is still there, still silenced
    (kept,) = httpx.get(f"{url}/alerts", params={"filter": 'from="api"'}).json()
    assert kept["status"]["silencedBy"] == [silence_id]
    deadline = time.monotonic() + 20
    groups: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(groups) < 2:
        groups = httpx.get(f"{url}/alerts/groups").json()
        time.sleep(0.2)
    (group,) = [g for g in groups if g["labels"] == {"alertname": "AlwaysFiring"}]
    assert group["acknowledged"]["by"] == "bob"
    time.sleep(3)
    # the notification log survived too: the restarted rule's alert is not news to the team
    assert [p for p, _ in sink.received] == ["/team"]
    events = httpx.get(
        f"{server.url}/api/v1/alerts/history", params={"filter": 'alertname="AlwaysFiring"'}
    ).json()
    assert "acknowledged" in [e["event"] for e in events]


def test_each_tenant_has_its_own_rules_and_alerts(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    (tmp_path / "default.yml").write_text(
        "groups:\n- name: d\n  rules:\n  - alert: DefaultAlert\n    expr: vector(1)\n"
    )
    (tmp_path / "team-a.yml").write_text(
        "groups:\n- name: a\n  rules:\n  - alert: TeamAlert\n    expr: vector(1)\n"
    )
    server = start_server(
        config="rules:\n  evaluation_interval: 1s\nrule_files: [default.yml]\n"
        "tenant_rule_files:\n  team-a: [team-a.yml]\n"
    )

    def names(path: str, tenant: str) -> list[str]:
        headers = {"X-Scope-OrgID": tenant}
        answer = httpx.get(f"{server.url}{path}", headers=headers, timeout=10).json()
        if path == "/api/v1/alerts":
            return sorted(a["labels"]["alertname"] for a in answer["data"]["alerts"])
        return sorted(a["labels"]["alertname"] for a in answer)

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (
        names("/api/v2/alerts", "team-a") and names("/api/v2/alerts", "default")
    ):
        time.sleep(0.2)
    assert names("/api/v1/alerts", "team-a") == ["TeamAlert"]
    assert names("/api/v1/alerts", "default") == ["DefaultAlert"]
    assert names("/api/v2/alerts", "team-a") == ["TeamAlert"]
    assert names("/api/v2/alerts", "default") == ["DefaultAlert"]
    assert names("/api/v1/alerts", "team-b") == []

    # the rule writes ALERTS into its own tenant's data (from its second evaluation: the
    # first restores `for` state, as in Prometheus)
    def alerts_series(tenant: str) -> list[str]:
        answer = httpx.get(
            f"{server.url}/api/v1/query",
            params={"query": "ALERTS"},
            headers={"X-Scope-OrgID": tenant},
        ).json()
        return [r["metric"]["alertname"] for r in answer["data"]["result"]]

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (
        alerts_series("team-a") and alerts_series("default")
    ):
        time.sleep(0.2)
    assert alerts_series("team-a") == ["TeamAlert"]
    assert alerts_series("default") == ["DefaultAlert"]


def test_a_threshold_rule_fires_and_resolves_as_its_sample_arrives(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    """Rules evaluated an hour apart, yet the alert reaches the webhook within a second of the
    remote_write that crossed the threshold, and its resolution as quickly."""
    sink = WebhookSink()
    (tmp_path / "alertmanager.yml").write_text(ALERTMANAGER % {"sink": sink.url})
    hour, now = 3_600_000, time.time() * 1000 % 3_600_000
    name = next(
        f"disks-{n}"
        for n in range(100)
        # a group whose hourly turn is not in the next minutes: only arrivals can fire it
        if (group_offset_ms(RuleGroup(f"disks-{n}", "rules.yml", ()), hour) - now) % hour > 600_000
    )
    (tmp_path / "rules.yml").write_text(
        f"groups:\n  - name: {name}\n    interval: 1h\n    rules:\n"
        "      - alert: DiskFull\n"
        '        expr: disk_free_bytes{mount="/"} < 1e9\n'
        "        annotations: {summary: '{{ $value | humanize1024 }}B free'}\n"
    )
    server = start_server(
        config="rule_files: [rules.yml]\nalerting:\n  alertmanager_config: alertmanager.yml\n"
    )
    client = server.client()

    def write(value: float) -> float:
        at = time.time()
        series = [({"__name__": "disk_free_bytes", "mount": "/"}, [(int(at * 1000), value)])]
        answer = client.post(
            "/api/v1/write", content=snappy_body(write_request(series)), headers=WRITE_HEADERS
        )
        assert answer.status_code == 204, answer.text
        return time.time()

    write(5e9)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "DiskFull" not in client.get("/api/v1/rules").text:
        time.sleep(0.1)
    time.sleep(0.5)  # the rule's series are watched once its group is loaded
    acked = write(1e8)
    ((path, body),) = sink.wait(1, timeout=10)
    fired_after = time.time() - acked
    payload = json.loads(body)
    assert path == "/team" and payload["status"] == "firing"
    (alert,) = payload["alerts"]
    assert alert["annotations"] == {"summary": "95.37MiB free"}
    acked = write(8e9)
    sink.wait(2, timeout=10)
    resolved = json.loads(sink.received[1][1])
    assert resolved["status"] == "resolved"
    # the rule resolved the alert as the sample arrived (its end is that evaluation); the
    # notification then waits for the group's next flush, group_interval (1s) after the first
    (ended,) = [a["endsAt"] for a in resolved["alerts"]]
    resolved_after = _epoch(ended) - acked
    assert fired_after < 1.0 and resolved_after < 1.0, (fired_after, resolved_after)
    metrics = client.get("/metrics").text
    assert "watchkeeper_rule_evaluations_on_arrival_total 2.0" in metrics
    rules = client.get("/api/v1/rules").json()["data"]["groups"]
    assert rules[0]["lastEvaluation"].startswith("0001-01-01")  # no turn came meanwhile


def test_a_tenant_routes_its_alerts_with_its_own_alertmanager_configuration(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    sink = WebhookSink()
    (tmp_path / "alertmanager.yml").write_text(ALERTMANAGER % {"sink": sink.url})
    (tmp_path / "team-a-am.yml").write_text(
        "route: {receiver: a-oncall, group_wait: 0s, group_interval: 1s}\n"
        f"receivers:\n  - name: a-oncall\n    webhook_configs: [{{url: '{sink.url}/a'}}]\n"
        "  - name: a-lead\n    webhook_configs: [{url: 'http://127.0.0.1:9/lead'}]\n"
    )
    for tenant in ("default", "team-a"):
        (tmp_path / f"{tenant}.yml").write_text(
            f"groups:\n  - name: g\n    rules:\n      - alert: {tenant}-alert\n"
            "        expr: vector(1)\n"
        )
    server = start_server(
        config="rules:\n  evaluation_interval: 1s\nrule_files: [default.yml]\n"
        "tenant_rule_files:\n  team-a: [team-a.yml]\n"
        "alerting:\n  alertmanager_config: alertmanager.yml\n  tenants:\n    team-a:\n"
        "      alertmanager_config: team-a-am.yml\n"
        "      escalation_policies:\n"
        "        - {receiver: a-oncall, levels: [{after: 1h, receiver: a-lead}]}\n"
    )
    received = {path: json.loads(body) for path, body in sink.wait(2)}
    assert sorted(received) == ["/a", "/team"]
    assert received["/a"]["receiver"] == "a-oncall"
    assert received["/a"]["commonLabels"]["alertname"] == "team-a-alert"
    assert received["/team"]["commonLabels"]["alertname"] == "default-alert"

    def get(path: str, tenant: str) -> Any:
        return httpx.get(f"{server.url}/api/v2/{path}", headers={"X-Scope-OrgID": tenant}).json()

    assert get("receivers", "team-a") == [{"name": "a-oncall"}, {"name": "a-lead"}]
    assert get("receivers", "default") == [{"name": "team"}, {"name": "primary"}]
    assert "a-oncall" in get("status", "team-a")["config"]["original"]
    assert "a-oncall" not in get("status", "team-b")["config"]["original"]


def test_a_tenant_alertmanager_configuration_is_checked_at_start(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    (tmp_path / "team-a-am.yml").write_text("route: {receiver: nobody}\nreceivers: []\n")
    config = tmp_path / "watchkeeper.yml"
    config.write_text(
        "alerting:\n  tenants:\n    team-a:\n      alertmanager_config: team-a-am.yml\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "watchkeeper", "serve", "--config", str(config),
         "--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:9"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "alerting.tenants.team-a.alertmanager_config:" in result.stderr
    assert "nobody" in result.stderr
