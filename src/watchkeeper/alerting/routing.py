"""Alertmanager's routing tree: which receivers an alert goes to.

The `route:` section of an Alertmanager configuration, read as Alertmanager reads it: each
route matches alerts by `matchers` (`service=~"foo|bar"`, `severity!="info"`) and by the older
`match` (equality) and `match_re` (anchored regular expressions); a child route inherits its
parent's receiver, `group_by` and timers unless it sets them. An alert walks the tree depth
first: the first matching child takes it, unless that child says `continue: true`, in which
case the next children are tried too; when no child matches, the route itself is the match.
This is `amtool config routes test`'s answer (Alertmanager's dispatch/route.go).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.model import Matcher, MatchOp, go_quote, parse_duration, yaml_label_text

_MATCHER = re.compile(r'^\s*("(?:[^"\\]|\\.)*"|[^\s=!~"]+)\s*(=~|!~|!=|=)\s*(.*?)\s*$', re.DOTALL)
_OPS = {"=": MatchOp.EQUAL, "!=": MatchOp.NOT_EQUAL, "=~": MatchOp.REGEX, "!~": MatchOp.NOT_REGEX}
_ROUTE_FIELDS = {
    "receiver",
    "group_by",
    "continue",
    "matchers",
    "match",
    "match_re",
    "routes",
    "group_wait",
    "group_interval",
    "repeat_interval",
    "mute_time_intervals",
    "active_time_intervals",
    "labels",
}


class RoutingError(ValueError):
    """A route that cannot be used; the message says where and why."""


@dataclass
class Route:
    receiver: str
    matchers: list[Matcher] = field(default_factory=list)
    group_by: tuple[str, ...] = ()  # none: one group per route, as Alertmanager
    group_by_all: bool = False  # group_by: ['...']
    continue_: bool = False
    group_wait_ms: int = 30_000
    group_interval_ms: int = 300_000
    repeat_interval_ms: int = 4 * 3_600_000
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
    routes: list[Route] = field(default_factory=list)
    # Alertmanager's route key, the first half of a group key: the matchers of the route and
    # its ancestors, `{}/{severity="page"}`
    key: str = "{}"

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes an alert with these labels goes to, in order."""
        if not all(m.matches(labels.get(m.name, "")) for m in self.matchers):
            return []
        found: list[Route] = []
        for child in self.routes:
            matched = child.match(labels)
            found.extend(matched)
            if matched and not child.continue_:
                break
        return found or [self]


def parse_matcher(text: str) -> Matcher:
    """One Alertmanager matcher, such as `service=~"foo|bar"` or `owner = team-X`."""
    found = _MATCHER.match(text)
    if found is None:
        raise RoutingError(f"bad matcher format: {text}")
    name, op, value = found.groups()
    if name.startswith('"'):
        name = _unquote(name, text)
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"'):
            raise RoutingError(f"bad matcher format: {text}")
        value = _unquote(value, text)
    try:
        return Matcher(name, _OPS[op], value)
    except ValueError as err:  # a regular expression that does not compile
        raise RoutingError(f"invalid regular expression in matcher {text!r}: {err}") from None


def parse_route(raw: Mapping[str, Any], parent: Route | None = None, where: str = "route") -> Route:
    """A route and its children; the top route must name a receiver."""
    if not isinstance(raw, Mapping):
        raise RoutingError(f"{where}: a route must be a mapping")
    for key in sorted(set(raw) - _ROUTE_FIELDS):
        raise RoutingError(f"{where}: field {key} not found in type config.plain")
    receiver = str(raw.get("receiver") or (parent.receiver if parent else ""))
    if parent is None and not receiver:
        raise RoutingError("root route must specify a default receiver")
    if parent is None and (raw.get("matchers") or raw.get("match") or raw.get("match_re")):
        raise RoutingError("root route must not have any matchers")
    matchers = [_matcher_item(m, where) for m in raw.get("matchers") or []]
    for name, value in (raw.get("match") or {}).items():
        matchers.append(Matcher(str(name), MatchOp.EQUAL, yaml_label_text(value)))
    for name, value in (raw.get("match_re") or {}).items():
        if value is None:
            raise RoutingError(
                f"{where}: invalid_label {name}: a match_re needs a regular expression"
            )
        try:
            matchers.append(Matcher(str(name), MatchOp.REGEX, yaml_label_text(value)))
        except ValueError as err:
            raise RoutingError(f"{where}: invalid regular expression for {name}: {err}") from None
    group_by = raw.get("group_by")
    route = Route(
        receiver=receiver,
        matchers=matchers,
        group_by=tuple(str(g) for g in group_by)
        if group_by is not None
        else (parent.group_by if parent else ()),
        group_by_all=group_by == ["..."]
        if group_by is not None
        else bool(parent and parent.group_by_all),
        continue_=bool(raw.get("continue", False)),
        group_wait_ms=_duration(
            raw, "group_wait", parent.group_wait_ms if parent else 30_000, where
        ),
        group_interval_ms=_duration(
            raw, "group_interval", parent.group_interval_ms if parent else 300_000, where
        ),
        repeat_interval_ms=_duration(
            raw, "repeat_interval", parent.repeat_interval_ms if parent else 4 * 3_600_000, where
        ),
        mute_time_intervals=tuple(raw.get("mute_time_intervals") or ()),
        active_time_intervals=tuple(raw.get("active_time_intervals") or ()),
    )
    route.key = (f"{parent.key}/" if parent else "") + matchers_text(matchers)
    if parent is None and route.continue_:
        raise RoutingError("cannot have continue in root route")
    if "..." in route.group_by and len(route.group_by) > 1:
        raise RoutingError(
            f"{where}: cannot have wildcard group_by (`...`) and other labels at the same time"
        )
    for number, child in enumerate(raw.get("routes") or [], start=1):
        route.routes.append(parse_route(child, route, f"{where}.routes[{number}]"))
    return route


def matchers_text(matchers: list[Matcher]) -> str:
    """`{a="1",b=~"x|y"}`: Alertmanager's Matchers.String, sorted by name, value and type."""
    order = {MatchOp.EQUAL: 0, MatchOp.NOT_EQUAL: 1, MatchOp.REGEX: 2, MatchOp.NOT_REGEX: 3}
    ordered = sorted(matchers, key=lambda m: (m.name, m.value, order[m.op]))
    return "{" + ",".join(matcher_text(m) for m in ordered) + "}"


def matcher_text(matcher: Matcher) -> str:
    """One matcher as Alertmanager writes it: the name (quoted unless a plain label name),
    the operator, and the value in double quotes with `\\`, `"` and newlines escaped."""
    name = matcher.name
    if not _PLAIN_NAME.fullmatch(name):
        name = go_quote(name)
    value = matcher.value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f'{name}{matcher.op.value}"{value}"'


_PLAIN_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def receivers_used(route: Route) -> set[str]:
    found = {route.receiver}
    for child in route.routes:
        found |= receivers_used(child)
    return found


def _matcher_item(item: Any, where: str) -> Matcher:
    if not isinstance(item, str):
        raise RoutingError(f"{where}: a matcher must be a string, not {item!r}")
    try:
        return parse_matcher(item)
    except RoutingError as err:
        raise RoutingError(f"{where}: {err}") from None


def _unquote(quoted: str, text: str) -> str:
    body = quoted[1:-1]
    try:
        return bytes(body, "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError):
        raise RoutingError(f"bad matcher format: {text}") from None


def _duration(raw: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = raw.get(key)
    if value is None:
        return default
    try:
        parsed = parse_duration(str(value))
    except ValueError as err:
        raise RoutingError(f"{where}: {key}: {err}") from None
    if parsed == 0 and key in ("group_interval", "repeat_interval"):
        raise RoutingError(f"{where}: {key} cannot be zero")
    return parsed
