"""Label matchers (=, !=, =~, !~) with Prometheus' matching semantics.

Regular expressions are RE2 (the engine Prometheus uses, via google-re2), fully anchored, and `.`
matches a newline as in Prometheus 3.x. A matcher on a label the series does not have sees the
empty string, so `{foo=""}` selects series without `foo` and `{foo=~".*"}` selects everything.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import re2


class MatchOp(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


# Matchers are built per query (and per evaluation, for rules) from the same few patterns;
# compiling one costs 10-15 us. Compiled RE2 programs are immutable and safe to share.
@functools.lru_cache(maxsize=4096)
def compile_anchored(pattern: str) -> Any:
    """Compile a Prometheus regex: anchored at both ends, `.` matching newlines."""
    options = re2.Options()
    options.log_errors = False  # the error is raised to the caller; nothing for stderr
    try:
        return re2.compile(f"^(?s:{pattern})$", options)
    except re2.error as err:
        raise ValueError(f"invalid regular expression {pattern!r}: {err}") from None


# Go's regexp template variables: $$, ${name} and $name, a name being letters, digits and
# underscores (a `$` followed by anything else is kept as it is)
_GO_TEMPLATE = re.compile(r"\$(?:(\$)|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def expand_template(template: str, match: Any) -> str:
    """Go's regexp Expand, as label_replace and relabelling use it: `$1`, `${1}`, `$name`,
    `${name}`; `$$` is a dollar sign; a group that does not exist or did not take part expands
    to nothing. `$1x` names the group `1x`, as in Go, so write `${1}x`."""

    def group(found: re.Match[str]) -> str:
        if found.group(1) is not None:
            return "$"
        name = found.group(2) if found.group(2) is not None else found.group(3)
        try:
            value = match.group(int(name)) if name.isdigit() else match.group(name)
        except (IndexError, KeyError, ValueError, re2.error):
            return ""
        return value or ""

    return _GO_TEMPLATE.sub(group, template)


@functools.lru_cache(maxsize=16384)
def anchored_replacement(pattern: str, template: str, value: str) -> str | None:
    """`template` expanded (expand_template) with the match of the anchored `pattern` on
    `value`; None when it does not match. Remembered: label_replace() over a dashboard's series
    meets the same label values on every refresh, and a match and its expansion cost 10-20 us
    through the RE2 binding."""
    match = compile_anchored(pattern).match(value)
    return None if match is None else expand_template(template, match)


@dataclass(frozen=True)
class Matcher:
    name: str
    op: MatchOp
    value: str
    _regex: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
            object.__setattr__(self, "_regex", compile_anchored(self.value))

    def matches(self, value: str) -> bool:
        """Whether a label value (empty string for an absent label) satisfies the matcher."""
        if self.op is MatchOp.EQUAL:
            return value == self.value
        if self.op is MatchOp.NOT_EQUAL:
            return value != self.value
        hit = self._regex.match(value) is not None
        return hit if self.op is MatchOp.REGEX else not hit

    def matches_empty(self) -> bool:
        """Whether a series lacking the label is selected (the empty-value rule)."""
        return self.matches("")

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op.value}"{escaped}"'
