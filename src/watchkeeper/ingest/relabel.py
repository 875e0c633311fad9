"""Prometheus relabelling: `relabel_configs` and `metric_relabel_configs` rules, as Prometheus 3.x
parses, validates and applies them (model/relabel in Prometheus).

A rule joins the values of its `source_labels` with `separator` and then, by `action`:
- `replace` (the default): where `regex` matches, sets `target_label` (which may itself use
  `$1`, `${name}`, ...) to the expanded `replacement`; an empty result removes the label;
- `keep` / `drop`: drops the label set where `regex` does not / does match;
- `keepequal` / `dropequal`: drops it where the joined value is not / is `target_label`'s value;
- `hashmod`: sets `target_label` to the MD5 of the value (its last 8 bytes, big-endian) modulo
  `modulus`, the number Prometheus' sharding uses;
- `labelmap`: copies every label whose name `regex` matches to the name `replacement` makes of it;
- `labeldrop` / `labelkeep`: removes the labels whose names `regex` matches / does not match;
- `lowercase` / `uppercase`: sets `target_label` to the value in lower / upper case.

Regular expressions are RE2, anchored at both ends, `.` matching newlines. Replacements expand
as Go's regexp does (model.expand_template). Rules apply in order to one set of changes, so a
later rule sees what an earlier one set, exactly as Prometheus' label builder does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import re2

from watchkeeper.model import Labels, NameValidation, is_valid_label_name
from watchkeeper.model.matchers import compile_anchored, expand_template

DEFAULT_SEPARATOR = ";"
DEFAULT_REGEX = "(.*)"
DEFAULT_REPLACEMENT = "$1"
# a replace target or labelmap replacement with $-variables, under legacy name validation
_LEGACY_TEMPLATE = re2.compile(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$")
_FIELDS = {
    "source_labels",
    "separator",
    "regex",
    "modulus",
    "target_label",
    "replacement",
    "action",
}


class RelabelError(ValueError):
    """A relabel rule Prometheus would refuse to load; the message is Prometheus'."""


class Action(StrEnum):
    REPLACE = "replace"
    KEEP = "keep"
    DROP = "drop"
    KEEPEQUAL = "keepequal"
    DROPEQUAL = "dropequal"
    HASHMOD = "hashmod"
    LABELMAP = "labelmap"
    LABELDROP = "labeldrop"
    LABELKEEP = "labelkeep"
    LOWERCASE = "lowercase"
    UPPERCASE = "uppercase"


_NEEDS_TARGET = {
    Action.REPLACE,
    Action.HASHMOD,
    Action.LOWERCASE,
    Action.UPPERCASE,
    Action.KEEPEQUAL,
    Action.DROPEQUAL,
}
_PLAIN_TARGET = {Action.LOWERCASE, Action.UPPERCASE, Action.KEEPEQUAL, Action.DROPEQUAL}


@dataclass(frozen=True)
class RelabelRule:
    """One relabel rule. Build it with `parse`, which validates as Prometheus does."""

    action: Action = Action.REPLACE
    source_labels: tuple[str, ...] = ()
    separator: str = DEFAULT_SEPARATOR
    regex: str = DEFAULT_REGEX
    modulus: int = 0
    target_label: str = ""
    replacement: str = DEFAULT_REPLACEMENT
    scheme: NameValidation = NameValidation.UTF8
    _compiled: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", compile_anchored(self.regex))

    @classmethod
    def parse(
        cls, raw: Mapping[str, Any], scheme: NameValidation = NameValidation.UTF8
    ) -> RelabelRule:
        """A rule from its configuration mapping (YAML field names), refused with Prometheus'
        message where Prometheus would refuse it."""
        unknown = sorted(set(raw) - _FIELDS)
        if unknown:
            raise RelabelError(f"unknown field {unknown[0]!r} in a relabel rule")
        action_text = raw.get("action", Action.REPLACE.value)
        try:
            action = Action(str(action_text).lower())
        except ValueError:
            raise RelabelError(f'unknown relabel action "{action_text}"') from None
        sources = raw.get("source_labels")
        if sources is not None and (
            isinstance(sources, str | bytes) or not isinstance(sources, Sequence)
        ):
            raise RelabelError(f"source_labels must be a list of label names, not {sources!r}")
        modulus = raw.get("modulus", 0)
        if not isinstance(modulus, int) or isinstance(modulus, bool) or modulus < 0:
            raise RelabelError(f"modulus must be a non-negative integer, not {modulus!r}")

        def text(name: str, default: str) -> str:
            # YAML gives numbers for `regex: 200` and None for an empty value
            value = raw.get(name, default)
            return "" if value is None else str(value)

        try:
            rule = cls(
                action=action,
                source_labels=tuple(str(s) for s in (sources or ())),
                separator=text("separator", DEFAULT_SEPARATOR),
                regex=text("regex", DEFAULT_REGEX),
                modulus=modulus,
                target_label=text("target_label", ""),
                replacement=text("replacement", DEFAULT_REPLACEMENT),
                scheme=scheme,
            )
        except ValueError as err:  # the regex does not compile
            raise RelabelError(str(err)) from None
        rule._validate(regex_given="regex" in raw, sources_given=sources is not None)
        return rule

    def _validate(self, regex_given: bool, sources_given: bool) -> None:
        action, target = self.action, self.target_label
        valid = self._valid_name
        if action is Action.HASHMOD and self.modulus == 0:
            raise RelabelError("relabel configuration for hashmod requires non-zero modulus")
        if action in _NEEDS_TARGET and not target:
            raise RelabelError(
                f"relabel configuration for {action} action requires 'target_label' value"
            )
        invalid_target = f"\"{target}\" is invalid 'target_label' for {action} action"
        if action is Action.REPLACE:
            if "$" in target and not self._valid_template(target):
                raise RelabelError(invalid_target)
            if "$" not in target and not valid(target):
                raise RelabelError(invalid_target)
        if action in _PLAIN_TARGET and not valid(target):
            raise RelabelError(invalid_target)
        if action in _PLAIN_TARGET and self.replacement != DEFAULT_REPLACEMENT:
            raise RelabelError(f"'replacement' can not be set for {action} action")
        if action is Action.LABELMAP and not self._valid_template(self.replacement):
            raise RelabelError(
                f"\"{self.replacement}\" is invalid 'replacement' for {action} action"
            )
        if action is Action.HASHMOD and not valid(target):
            raise RelabelError(invalid_target)
        defaults = (
            self.modulus == 0
            and self.separator == DEFAULT_SEPARATOR
            and self.replacement == DEFAULT_REPLACEMENT
        )
        if action in (Action.KEEPEQUAL, Action.DROPEQUAL) and (regex_given or not defaults):
            raise RelabelError(
                f"{action} action requires only 'source_labels' and `target_label`, and no "
                "other fields"
            )
        if action in (Action.LABELDROP, Action.LABELKEEP) and (
            sources_given or target or not defaults
        ):
            raise RelabelError(f"{action} action requires only 'regex', and no other fields")

    def _valid_name(self, name: str) -> bool:
        return is_valid_label_name(name, self.scheme)

    def _valid_template(self, text: str) -> bool:
        """A label name that may hold `$` variables."""
        if self.scheme is NameValidation.LEGACY:
            return _LEGACY_TEMPLATE.match(text) is not None
        return bool(text)

    def apply(self, builder: LabelBuilder) -> bool:
        """Apply the rule to `builder`; False where the label set is to be dropped."""
        value = self.separator.join(builder.get(name) for name in self.source_labels)
        action = self.action
        regex = self._compiled
        if action is Action.DROP:
            return regex.match(value) is None
        if action is Action.KEEP:
            return regex.match(value) is not None
        if action is Action.DROPEQUAL:
            return builder.get(self.target_label) != value
        if action is Action.KEEPEQUAL:
            return builder.get(self.target_label) == value
        if action is Action.REPLACE:
            self._replace(builder, value)
        elif action is Action.LOWERCASE:
            builder.set(self.target_label, value.lower())
        elif action is Action.UPPERCASE:
            builder.set(self.target_label, value.upper())
        elif action is Action.HASHMOD:
            digest = hashlib.md5(value.encode(), usedforsecurity=False).digest()
            builder.set(self.target_label, str(int.from_bytes(digest[8:], "big") % self.modulus))
        elif action is Action.LABELMAP:
            for name, label_value in builder.labels_now():
                found = regex.match(name)
                if found is not None:
                    builder.set(expand_template(self.replacement, found), label_value)
        elif action is Action.LABELDROP:
            for name, _ in builder.labels_now():
                if regex.match(name) is not None:
                    builder.delete(name)
        elif action is Action.LABELKEEP:
            for name, _ in builder.labels_now():
                if regex.match(name) is None:
                    builder.delete(name)
        return True

    def _replace(self, builder: LabelBuilder, value: str) -> None:
        target, replacement = self.target_label, self.replacement
        if (
            value == ""
            and self.regex == DEFAULT_REGEX
            and "$" not in target
            and "$" not in replacement
        ):
            # Prometheus' shortcut for setting a fixed label: the replacement as written
            builder.set(target, replacement)
            return
        found = self._compiled.match(value)
        if found is None:
            return
        name = expand_template(target, found)
        if not self._valid_name(name):
            return
        builder.set(name, expand_template(replacement, found))


class LabelBuilder:
    """A label set being changed, with the semantics of Prometheus' labels.Builder that
    relabelling relies on: setting an empty value deletes, a read sees the latest change, and
    `labels_now` lists the original labels still untouched (in name order) and then the ones
    set since (in the order first set), as a rule that walks the labels sees them."""

    def __init__(self, labels: Labels) -> None:
        self._base = dict(labels)
        self._added: dict[str, str] = {}
        self._deleted: set[str] = set()

    def get(self, name: str) -> str:
        if name in self._added:
            return self._added[name]
        if name in self._deleted:
            return ""
        return self._base.get(name, "")

    def set(self, name: str, value: str) -> None:
        if value == "":
            self.delete(name)
        else:
            self._added[name] = value

    def delete(self, name: str) -> None:
        self._added.pop(name, None)
        self._deleted.add(name)

    def labels_now(self) -> list[tuple[str, str]]:
        untouched = [
            (n, v)
            for n, v in sorted(self._base.items())
            if n not in self._deleted and n not in self._added
        ]
        return untouched + list(self._added.items())

    def labels(self) -> Labels:
        return tuple(sorted(self.labels_now()))


def relabel(labels: Labels, rules: Sequence[RelabelRule]) -> Labels | None:
    """`labels` after `rules` in order; None where a rule drops the label set."""
    builder = LabelBuilder(labels)
    for rule in rules:
        if not rule.apply(builder):
            return None
    return builder.labels()


def parse_rules(
    raw: Sequence[Mapping[str, Any]] | None, scheme: NameValidation = NameValidation.UTF8
) -> list[RelabelRule]:
    """A `relabel_configs` list; the error names the rule (counting from 1) it is about."""
    rules = []
    for number, item in enumerate(raw or (), start=1):
        if not isinstance(item, Mapping):
            raise RelabelError(f"relabel rule {number}: expected a mapping, got {item!r}")
        try:
            rules.append(RelabelRule.parse(item, scheme))
        except RelabelError as err:
            raise RelabelError(f"relabel rule {number}: {err}") from None
    return rules
