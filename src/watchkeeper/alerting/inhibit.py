"""Inhibition rules: a firing alert (the source) mutes others (the targets).

A rule has source matchers, target matchers and `equal` label names. An alert matching the
target matchers is muted while some unresolved alert matches the source matchers and has the
same values (absent counting as empty) for every `equal` label. An alert matching both sides
is not muted by a source that also matches both, so an alert never mutes itself or its twins.
As Alertmanager's inhibit package.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from watchkeeper.alerting.routing import RoutingError, parse_matcher
from watchkeeper.model import Matcher, MatchOp, yaml_label_text
from watchkeeper.model.alerts import Alert, fingerprint_text


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]


def _matches(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels.get(m.name, "")) for m in matchers)


def inhibited_by(
    rules: Sequence[InhibitRule], labels: Mapping[str, str], alerts: Iterable[Alert], now_ms: int
) -> str | None:
    """The fingerprint (as text) of an alert that mutes one with these labels, if any."""
    candidates = None
    for rule in rules:
        if not _matches(rule.target, labels):
            continue
        two_sided = _matches(rule.source, labels)
        if candidates is None:
            candidates = [(a, dict(a.labels)) for a in alerts if not a.resolved_at(now_ms)]
        for alert, source in candidates:
            if not _matches(rule.source, source):
                continue
            if any(source.get(name, "") != labels.get(name, "") for name in rule.equal):
                continue
            if two_sided and _matches(rule.target, source):
                continue
            return fingerprint_text(alert.labels)
    return None


def parse_inhibit_rules(raw: Sequence[Any]) -> tuple[InhibitRule, ...]:
    rules = []
    for number, item in enumerate(raw, start=1):
        where = f"inhibit_rules[{number}]"
        rules.append(
            InhibitRule(
                source=_side(item, "source", where),
                target=_side(item, "target", where),
                equal=tuple(str(name) for name in item.get("equal") or ()),
            )
        )
    return tuple(rules)


def _side(item: Mapping[str, Any], side: str, where: str) -> tuple[Matcher, ...]:
    matchers = [parse_matcher(str(m)) for m in item.get(f"{side}_matchers") or ()]
    for name, value in (item.get(f"{side}_match") or {}).items():
        matchers.append(Matcher(str(name), MatchOp.EQUAL, yaml_label_text(value)))
    for name, value in (item.get(f"{side}_match_re") or {}).items():
        try:
            matchers.append(Matcher(str(name), MatchOp.REGEX, yaml_label_text(value)))
        except ValueError as err:
            raise RoutingError(f"{where}: {side}_match_re {name}: {err}") from None
    return tuple(matchers)
