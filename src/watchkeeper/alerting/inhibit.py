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


class Inhibitor:
    """The inhibition rules over a set of alerts at one moment: each rule's unresolved source
    alerts, indexed by their `equal` label values, so that checking an alert costs a lookup
    per rule whose target it matches (as Alertmanager keeps a cache of source alerts)."""

    def __init__(self, rules: Sequence[InhibitRule], alerts: Iterable[Alert], now_ms: int):
        self.rules = rules
        self._sources: list[dict[tuple[str, ...], list[tuple[Alert, dict[str, str]]]]] = [
            {} for _ in rules
        ]
        if not rules:
            return
        for alert in alerts:
            if alert.resolved_at(now_ms):
                continue
            labels = dict(alert.labels)
            for rule, index in zip(rules, self._sources, strict=True):
                if _matches(rule.source, labels):
                    key = tuple(labels.get(name, "") for name in rule.equal)
                    index.setdefault(key, []).append((alert, labels))

    def inhibited_by(self, labels: Mapping[str, str]) -> str | None:
        """The fingerprint (as text) of an alert that mutes one with these labels, if any."""
        for rule, index in zip(self.rules, self._sources, strict=True):
            if not index or not _matches(rule.target, labels):
                continue
            two_sided = _matches(rule.source, labels)
            key = tuple(labels.get(name, "") for name in rule.equal)
            for alert, source in index.get(key, ()):
                if two_sided and _matches(rule.target, source):
                    continue  # an alert matching both sides does not mute its twins
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
