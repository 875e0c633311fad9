"""Relabelling against Prometheus itself: every case of tests/ingest/relabel_cases.py is run by
`promtool check service-discovery` (Debian's Prometheus 2.42) on a static target and by
watchkeeper's relabelling, and the target labels must be the same; every rule Prometheus
refuses must be refused by `promtool check config` with the message watchkeeper gives.

Prometheus adds its scrape settings to a target's labels before relabelling and, after it,
removes `__meta_*` labels and sets `instance` from `__address__` where unset; `_as_prometheus`
does the same around watchkeeper's relabelling, so that what is compared is the relabelling.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ingest.relabel_cases import CASES, PROMETHEUS_2_DIFFERS, REFUSED
from tests.peer.conftest import _require
from watchkeeper.ingest.relabel import RelabelError, parse_rules, relabel
from watchkeeper.model import labels_from_dict

JOB = "peer"
ADDRESS = "peer.test:9100"
SCRAPE_LABELS = {
    "job": JOB,
    "__scrape_interval__": "1m",
    "__scrape_timeout__": "10s",
    "__metrics_path__": "/metrics",
    "__scheme__": "http",
}


@pytest.fixture(scope="module")
def promtool() -> str:
    return _require("promtool")


def _config(path: Path, labels: dict[str, str], rules: list[dict[str, Any]]) -> Path:
    static = {k: v for k, v in labels.items() if k != "__address__"}
    job = {
        "job_name": JOB,
        "static_configs": [{"targets": [labels.get("__address__", ADDRESS)], "labels": static}],
        "relabel_configs": rules,
    }
    path.write_text(yaml.safe_dump({"scrape_configs": [job]}))
    return path


def _as_prometheus(labels: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str]:
    """The target labels Prometheus would make with watchkeeper's relabelling ({} if dropped)."""
    given = {"__address__": ADDRESS, **labels}
    for name, value in SCRAPE_LABELS.items():
        given.setdefault(name, value)
    result = relabel(labels_from_dict(given), parse_rules(rules))
    if result is None:
        return {}
    out = {k: v for k, v in result if not k.startswith("__meta_")}
    out.setdefault("instance", out["__address__"])
    return out


@pytest.fixture(scope="module")
def prometheus_targets(
    promtool: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, str]]:
    """Each case's target labels as promtool reports them. promtool waits out its discovery
    timeout before it answers, so all cases run at once."""
    directory = tmp_path_factory.mktemp("relabel-peer")
    running = {}
    for number, (title, labels, rules, _) in enumerate(CASES):
        if title in PROMETHEUS_2_DIFFERS:
            continue
        config = _config(directory / f"case-{number}.yml", labels, rules)
        running[title] = subprocess.Popen(
            [promtool, "check", "service-discovery", str(config), JOB, "--timeout=2s"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    found = {}
    for title, process in running.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"{title}: {out}{err}"
        (target,) = json.loads(out)
        found[title] = target["labels"]
    return found


@pytest.mark.parametrize(
    ("title", "labels", "rules"), [c[:3] for c in CASES], ids=[c[0] for c in CASES]
)
def test_relabelling_gives_the_target_labels_prometheus_gives(
    prometheus_targets: dict[str, dict[str, str]],
    title: str,
    labels: dict[str, str],
    rules: list[dict[str, Any]],
) -> None:
    if title in PROMETHEUS_2_DIFFERS:
        pytest.skip(PROMETHEUS_2_DIFFERS[title])
    assert _as_prometheus(labels, rules) == prometheus_targets[title]


@pytest.mark.parametrize(("raw", "message"), REFUSED, ids=[m for _, m in REFUSED])
def test_prometheus_refuses_the_same_rules_with_the_same_message(
    promtool: str, tmp_path: Path, raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(RelabelError) as caught:
        parse_rules([raw])
    ours = str(caught.value).removeprefix("relabel rule 1: ")
    config = _config(tmp_path / "prometheus.yml", {}, [raw])
    done = subprocess.run(
        [promtool, "check", "config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0, done.stdout
    said = done.stdout + done.stderr
    if message in ("regular", "source_labels must be a list", "unknown field 'modulo'"):
        # Go's YAML and regexp errors are worded by their libraries, not by relabel
        return
    assert ours in said, said
