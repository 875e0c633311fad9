"""Prometheus rule files: read and checked as Prometheus 3.x's rulefmt reads them.

A file holds `groups:` (or, as a PrometheusRule custom resource, `spec: {groups: ...}`); each
group a unique `name`, an optional `interval`, `limit`, `query_offset` and `labels`, and
`rules`, each a recording rule (`record`, `expr`, `labels`) or an alerting rule (`alert`,
`expr`, `for`, `keep_firing_for`, `labels`, `annotations`). Every problem in a file is
reported, each with Prometheus' wording (`group "g", rule 2, "X": invalid field 'for' in
recording rule`), so `watchkeeper rules check` says what `promtool check rules` says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from watchkeeper.model import (
    METRIC_NAME,
    NameValidation,
    is_valid_label_name,
    is_valid_metric_name,
    parse_duration,
    yaml_label_text,
)
from watchkeeper.promql import QueryError
from watchkeeper.promql.engine import parse as parse_query
from watchkeeper.rules.template_functions import TemplateError
from watchkeeper.rules.templates import Template

_GROUP_FIELDS = {"name", "interval", "query_offset", "limit", "rules", "labels"}
_RULE_FIELDS = {"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"}


class RuleFileError(ValueError):
    """A rule file that cannot be used; `errors` lists every problem found in it."""

    def __init__(self, path: str, errors: list[str]) -> None:
        """`path` "" when every error names its own file."""
        super().__init__((f"{path}: " if path else "") + "; ".join(errors))
        self.path = path
        self.errors = errors


@dataclass(frozen=True)
class Rule:
    expr: str
    record: str = ""
    alert: str = ""
    for_ms: int = 0
    keep_firing_for_ms: int = 0
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.alert or self.record


@dataclass(frozen=True)
class RuleGroup:
    name: str
    file: str
    rules: tuple[Rule, ...]
    interval_ms: int = 0  # 0: the global evaluation interval
    limit: int = 0
    query_offset_ms: int | None = None
    labels: tuple[tuple[str, str], ...] = ()


@dataclass
class _Problems:
    errors: list[str] = field(default_factory=list)
    ignore_unknown: bool = False  # promtool's --ignore-unknown-fields

    def add(self, message: str) -> None:
        self.errors.append(message)

    def unknown_field(self, key: str, type_name: str) -> None:
        if not self.ignore_unknown:
            self.errors.append(f"field {key} not found in type rulefmt.{type_name}")


def load_file(
    path: Path, scheme: NameValidation = NameValidation.UTF8, ignore_unknown: bool = False
) -> list[RuleGroup]:
    """The groups of one rule file; RuleFileError listing every problem if it has any.

    `ignore_unknown` accepts keys the format does not know (as promtool's
    --ignore-unknown-fields), for files that carry tool-specific extras.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RuleFileError(str(path), [f"cannot read: {err.strerror}"]) from None
    return parse_groups(text, str(path), scheme, ignore_unknown)


def parse_groups(
    text: str,
    source: str,
    scheme: NameValidation = NameValidation.UTF8,
    ignore_unknown: bool = False,
) -> list[RuleGroup]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RuleFileError(source, [f"not valid YAML: {err}"]) from None
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        raise RuleFileError(source, ["the top level must be a mapping with a groups list"])
    if raw.get("kind") == "PrometheusRule" and isinstance(raw.get("spec"), Mapping):
        raw = raw["spec"]  # a PrometheusRule custom resource: its groups are under spec
    problems = _Problems(ignore_unknown=ignore_unknown)
    unknown = sorted(set(raw) - {"groups"})
    if unknown:
        problems.unknown_field(unknown[0], "RuleGroups")
    groups_raw = raw.get("groups") or []
    if not isinstance(groups_raw, list):
        raise RuleFileError(source, ["groups must be a list"])
    groups: list[RuleGroup] = []
    seen: set[str] = set()
    for raw_group in groups_raw:
        group = _group(raw_group, source, scheme, problems, seen)
        if group is not None:
            groups.append(group)
    if problems.errors:
        raise RuleFileError(source, problems.errors)
    return groups


def _group(
    raw: Any, source: str, scheme: NameValidation, problems: _Problems, seen: set[str]
) -> RuleGroup | None:
    if not isinstance(raw, Mapping):
        problems.add("each group must be a mapping")
        return None
    for key in sorted(set(raw) - _GROUP_FIELDS):
        problems.unknown_field(key, "RuleGroup")
    name = str(raw.get("name") or "")
    if not name:
        problems.add("Groupname must not be empty")
    elif name in seen:
        problems.add(f'groupname: "{name}" is repeated in the same file')
    seen.add(name)
    labels = _label_map(raw.get("labels"), scheme, problems, f'group "{name}": ')
    rules = []
    for number, raw_rule in enumerate(raw.get("rules") or [], start=1):
        rule_problems = _Problems(ignore_unknown=problems.ignore_unknown)
        rule = _rule(raw_rule, scheme, rule_problems)
        label = (
            raw_rule.get("alert") or raw_rule.get("record") if isinstance(raw_rule, Mapping) else ""
        )
        for error in rule_problems.errors:
            problems.add(f'group "{name}", rule {number}, "{label or ""}": {error}')
        if rule is not None and not rule_problems.errors:
            rules.append(rule)
    limit = raw.get("limit", 0) or 0
    if not isinstance(limit, int) or limit < 0:
        problems.add(f'group "{name}": limit must be a non-negative integer')
        limit = 0
    return RuleGroup(
        name=name,
        file=source,
        rules=tuple(rules),
        interval_ms=_duration(raw.get("interval"), "interval", problems) or 0,
        limit=limit,
        query_offset_ms=_duration(raw.get("query_offset"), "query_offset", problems),
        labels=labels,
    )


def _rule(raw: Any, scheme: NameValidation, problems: _Problems) -> Rule | None:
    if not isinstance(raw, Mapping):
        problems.add("each rule must be a mapping")
        return None
    for key in sorted(set(raw) - _RULE_FIELDS):
        problems.unknown_field(key, "Rule")
    record, alert = str(raw.get("record") or ""), str(raw.get("alert") or "")
    expr = raw.get("expr")
    expr = "" if expr is None else str(expr)
    if record and alert:
        problems.add("only one of 'record' and 'alert' must be set")
    if not record and not alert:
        problems.add("one of 'record' or 'alert' must be set")
    if not expr:
        problems.add("field 'expr' must be set in rule")
    else:
        try:
            parse_query(expr)
        except QueryError as err:
            problems.add(f"could not parse expression: {err}")
    for_ms = _duration(raw.get("for"), "for", problems) or 0
    keep_ms = _duration(raw.get("keep_firing_for"), "keep_firing_for", problems) or 0
    annotations = _label_map(raw.get("annotations"), scheme, problems, "", annotation=True)
    if record:
        if annotations:
            problems.add("invalid field 'annotations' in recording rule")
        if for_ms:
            problems.add("invalid field 'for' in recording rule")
        if keep_ms:
            problems.add("invalid field 'keep_firing_for' in recording rule")
        if "{" in record or "}" in record:
            problems.add(
                f"braces present in the recording rule name; should it be in expr?: {record}"
            )
        elif not is_valid_metric_name(record, scheme):
            problems.add(f"invalid recording rule name: {record}")
    labels = _label_map(raw.get("labels"), scheme, problems, "")
    if alert:
        # label and annotation templates must parse, as Prometheus checks on loading
        name = f"__alert_{alert}"
        for kind, pairs in (("label", labels), ("annotation", annotations)):
            for key, text in pairs:
                try:
                    Template(name, text)
                except TemplateError as err:
                    problems.add(f'{kind} "{key}": {err}')
    return Rule(
        expr=expr,
        record=record,
        alert=alert,
        for_ms=for_ms,
        keep_firing_for_ms=keep_ms,
        labels=labels,
        annotations=annotations,
    )


def _label_map(
    raw: Any, scheme: NameValidation, problems: _Problems, where: str, annotation: bool = False
) -> tuple[tuple[str, str], ...]:
    if not raw:
        return ()
    kind = "annotation" if annotation else "label"
    if not isinstance(raw, Mapping):
        problems.add(f"{where}{kind}s must be a mapping")
        return ()
    pairs = []
    for key, value in raw.items():
        name = str(key)
        text = yaml_label_text(value)
        if not is_valid_label_name(name, scheme) or (not annotation and name == METRIC_NAME):
            problems.add(f"{where}invalid {kind} name: {name}")
            continue
        pairs.append((name, text))
    return tuple(sorted(pairs))


def _duration(raw: Any, key: str, problems: _Problems) -> int | None:
    if raw is None:
        return None
    try:
        return parse_duration(str(raw))
    except ValueError as err:
        problems.add(f"{key}: {err}")
        return None
