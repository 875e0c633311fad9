"""`watchkeeper rules check` gives the verdict of `promtool check rules` (Debian's Prometheus
2.42) on every rule file of ../shared/conformance/rules whose features 2.42 knows. The
PrometheusRule resources are given to promtool as their spec.groups, as SOURCE.md's checks did.

Kept out, each with its reason: the UTF-8 name fixtures (2.42 knows only legacy names, 3.x
takes any UTF-8)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import SHARED
from tests.peer.conftest import _require
from watchkeeper.rules import RuleFileError, load_file

RULES = SHARED / "conformance" / "rules"
pytestmark = pytest.mark.skipif(not RULES.is_dir(), reason="../shared/conformance/rules is absent")
DIFFERENT_IN_2_42 = {
    "utf-8_lname.good.yaml": "UTF-8 label names are Prometheus 3.x (2.42 refuses them)",
    "utf-8_annotation.good.yaml": "UTF-8 annotation names are Prometheus 3.x",
    "legacy_validation_annotation.bad.yaml": "its annotation name is valid UTF-8 (3.x)",
}


def _files() -> list[Path]:
    corpora = ["awesome-prometheus-alerts", "kube-prometheus", "kubernetes-mixin", "node-mixin"]
    files = [
        p for corpus in corpora for p in (RULES / corpus).rglob("*.y*ml") if "tests" not in p.parts
    ]
    files += sorted((RULES / "prometheus-rulefmt").glob("*.yaml"))
    files += [
        RULES / "prometheus-promtool" / name
        for name in ("rules.yml", "rules-bad.yml", "bad-rules-syntax.yml", "rules_extrafields.yml")
    ]
    return sorted(files)


@pytest.fixture(scope="module")
def promtool() -> str:
    return _require("promtool")


@pytest.mark.parametrize("path", _files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_same_verdict_as_promtool(path: Path, promtool: str, tmp_path: Path) -> None:
    if path.name in DIFFERENT_IN_2_42:
        pytest.skip(DIFFERENT_IN_2_42[path.name])
    given = path
    raw = yaml.safe_load(path.read_text())
    if isinstance(raw, dict) and raw.get("kind") == "PrometheusRule":
        given = tmp_path / path.name
        given.write_text(yaml.safe_dump({"groups": raw["spec"]["groups"]}))
    theirs = subprocess.run(
        [promtool, "check", "rules", str(given)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        load_file(path)
        ours = "valid"
    except RuleFileError as err:
        ours = f"refused: {err.errors[0]}"
    assert (ours == "valid") == (theirs.returncode == 0), (ours, theirs.stdout, theirs.stderr)
