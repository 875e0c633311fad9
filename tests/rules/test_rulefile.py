"""Rule files: the real-world corpora in ../shared/conformance/rules load, and Prometheus'
rulefmt fixtures load or are refused with Prometheus' error texts (rules/SOURCE.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED
from watchkeeper.model import NameValidation
from watchkeeper.rules import RuleFileError, load_file, parse_groups

RULES = SHARED / "conformance" / "rules"
pytestmark = pytest.mark.skipif(not RULES.is_dir(), reason="../shared/conformance/rules is absent")

# The files of the corpora that are rule files (the promtool directory also holds unit-test
# suites, which `rules test` reads).
CORPORA = ["awesome-prometheus-alerts", "kube-prometheus", "kubernetes-mixin", "node-mixin"]
REFUSED = {
    "duplicate_grp.bad.yaml": 'groupname: "yolo" is repeated in the same file',
    "bad_expr.bad.yaml": "parse error",
    "record_and_alert.bad.yaml": "only one of 'record' and 'alert' must be set",
    "no_rec_alert.bad.yaml": "one of 'record' or 'alert' must be set",
    "noexpr.bad.yaml": "field 'expr' must be set in rule",
    "invalid_record_name.bad.yaml": (
        "braces present in the recording rule name; should it be in expr?: "
        'strawberry{flavor="sweet"}'
    ),
    "bad_field.bad.yaml": "field annotation not found",
    "invalid_label_name.bad.yaml": "invalid label name",
    "record_and_for.bad.yaml": "invalid field 'for' in recording rule",
    "record_and_keep_firing_for.bad.yaml": "invalid field 'keep_firing_for' in recording rule",
}


def _corpus() -> list[Path]:
    return sorted(
        p for corpus in CORPORA for p in (RULES / corpus).rglob("*.y*ml") if "tests" not in p.parts
    )


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_corpus_file_loads(path: Path) -> None:
    groups = load_file(path)
    assert groups and all(group.rules for group in groups)


def test_the_corpora_hold_the_rules_source_md_counts() -> None:
    rules = [rule for path in _corpus() for group in load_file(path) for rule in group.rules]
    alerts = sum(1 for r in rules if r.alert)
    records = sum(1 for r in rules if r.record)
    # SOURCE.md: awesome 387 alerts; kube-prometheus 139 + 95; kubernetes-mixin 65 + 71;
    # node-mixin 26 + 15, plus the compatibility files' 89 records
    assert (alerts, records) == (387 + 139 + 65 + 26, 95 + 71 + 15 + 89)


@pytest.mark.parametrize(
    "name",
    [
        "test.yaml",
        "test_aliases.yaml",
        "utf-8_lname.good.yaml",
        "utf-8_annotation.good.yaml",
        "legacy_validation_annotation.good.yaml",
    ],
)
def test_rulefmt_good_files_load(name: str) -> None:
    assert load_file(RULES / "prometheus-rulefmt" / name)


def test_legacy_names_file_loads_under_legacy_validation() -> None:
    path = RULES / "prometheus-rulefmt" / "legacy_validation_annotation.good.yaml"
    assert load_file(path, NameValidation.LEGACY)
    bad = RULES / "prometheus-rulefmt" / "legacy_validation_annotation.bad.yaml"
    assert load_file(bad)  # utf-8 names: ins-tance is a valid annotation name
    with pytest.raises(RuleFileError, match="invalid annotation name: ins-tance"):
        load_file(bad, NameValidation.LEGACY)


@pytest.mark.parametrize(("name", "message"), sorted(REFUSED.items()))
def test_rulefmt_bad_files_are_refused_with_prometheus_text(name: str, message: str) -> None:
    with pytest.raises(RuleFileError) as refused:
        load_file(RULES / "prometheus-rulefmt" / name)
    assert any(message in error for error in refused.value.errors), refused.value.errors


def test_promtool_fixtures() -> None:
    promtool = RULES / "prometheus-promtool"
    assert sum(len(g.rules) for g in load_file(promtool / "rules.yml")) == 5
    with pytest.raises(RuleFileError, match="could not parse expression"):
        load_file(promtool / "bad-rules-syntax.yml")
    # extra keys are refused (promtool takes them only with --ignore-unknown-fields)
    with pytest.raises(RuleFileError, match="field namespace not found"):
        load_file(promtool / "rules_extrafields.yml")
    # an annotation template using an undefined variable ($label for $labels)
    with pytest.raises(RuleFileError) as refused:
        load_file(promtool / "rules-bad.yml")
    assert refused.value.errors == [
        'group "alerts", rule 1, "InstanceDown": annotation "summary": '
        'template: __alert_InstanceDown:1: undefined variable "$label"'
    ]  # word for word what promtool prints
    # experimental PromQL needs Prometheus' feature flags; we have none of those functions
    with pytest.raises(RuleFileError):
        load_file(promtool / "features.yml")


def test_every_problem_is_reported_with_group_and_rule() -> None:
    text = """
groups:
  - name: g
    rules:
      - record: ok
        expr: up
      - record: r
        expr: sum(
        for: 5m
      - alert: A
        expr: up == 0
        labels: {__name__: x}
  - name: g
    rules: []
"""
    with pytest.raises(RuleFileError) as refused:
        parse_groups(text, "inline.yml")
    errors = refused.value.errors
    assert errors[0].startswith('group "g", rule 2, "r": could not parse expression')
    assert errors[1] == 'group "g", rule 2, "r": invalid field \'for\' in recording rule'
    assert errors[2] == 'group "g", rule 3, "A": invalid label name: __name__'
    assert errors[3] == 'groupname: "g" is repeated in the same file'


def test_the_rules_check_command() -> None:
    good = RULES / "prometheus-promtool" / "rules.yml"
    bad = RULES / "prometheus-rulefmt" / "record_and_for.bad.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "watchkeeper", "rules", "check", str(good), str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"Checking {good}\n  SUCCESS: 5 rules found\n" in result.stdout
    assert "invalid field 'for' in recording rule" in result.stdout
