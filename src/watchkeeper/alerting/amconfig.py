"""An Alertmanager configuration file: the route tree, the receivers and their integrations,
inhibition rules, time intervals and `global.resolve_timeout`, with Alertmanager's checks that
tie them together and its checks of `global:` and of the receivers' credentials
(receivers.py). What each integration does with its settings is the notify package's."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from watchkeeper.alerting.inhibit import InhibitRule, parse_inhibit_rules
from watchkeeper.alerting.notification import TEMPLATE_FUNCTIONS, Integration, integrations_of
from watchkeeper.alerting.receivers import check_global, check_inhibit_rules, check_receivers
from watchkeeper.alerting.routing import Route, RoutingError, parse_route
from watchkeeper.alerting.timeintervals import Period, parse_time_intervals
from watchkeeper.model import goyaml, parse_duration
from watchkeeper.rules.template_functions import TemplateError
from watchkeeper.rules.templates import Template

DEFAULT_RESOLVE_TIMEOUT_MS = 300_000


@dataclass(frozen=True)
class AlertmanagerConfig:
    route: Route
    receivers: tuple[str, ...]
    time_intervals: tuple[str, ...]
    integrations: dict[str, tuple[Integration, ...]] = field(default_factory=dict)
    inhibit_rules: tuple[InhibitRule, ...] = ()
    periods: dict[str, tuple[Period, ...]] = field(default_factory=dict)
    resolve_timeout_ms: int = DEFAULT_RESOLVE_TIMEOUT_MS
    original: str = ""  # the YAML as given, for /api/v2/status


def load_alertmanager_config(path: Path) -> AlertmanagerConfig:
    """Read and check one file (and its `templates:`, relative to it); RoutingError naming
    the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RoutingError(f"{path}: cannot read: {err.strerror}") from None
    try:
        return parse_alertmanager_text(text, path.parent)
    except RoutingError as err:
        raise RoutingError(f"{path}: {err}") from None


def parse_alertmanager_text(text: str, base: Path | None = None) -> AlertmanagerConfig:
    try:
        raw = goyaml.load(text)  # string fields keep `yes`/`On` as written, as in Go
    except yaml.YAMLError as err:
        raise RoutingError(f"not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise RoutingError("not an Alertmanager configuration")
    return parse_alertmanager_config(raw, text, base)


def parse_alertmanager_config(
    raw: dict[str, Any], original: str = "", base: Path | None = None
) -> AlertmanagerConfig:
    global_raw = raw.get("global") or {}
    if not isinstance(global_raw, dict):
        raise RoutingError("global must be a mapping")
    check_global(global_raw)
    if "route" not in raw or not raw["route"]:
        raise RoutingError("no routes provided")
    receivers = []
    for item in raw.get("receivers") or []:
        name = item.get("name") if isinstance(item, dict) else None
        if not name:
            raise RoutingError("missing name in receiver")
        if name in receivers:
            raise RoutingError(f'notification config name "{name}" is not unique')
        receivers.append(str(name))
    intervals = [
        str(item.get("name"))
        for key in ("time_intervals", "mute_time_intervals")
        for item in raw.get(key) or []
        if isinstance(item, dict)
    ]
    # in Alertmanager's order: what reading the receivers finds, then the route's references
    check_receivers(global_raw, raw.get("receivers") or [])
    check_inhibit_rules(raw.get("inhibit_rules") or [])
    route = parse_route(raw["route"])
    _check(route, set(receivers), set(intervals))
    try:
        resolve_timeout = parse_duration(str(global_raw.get("resolve_timeout") or "5m"))
    except ValueError as err:
        raise RoutingError(f"global.resolve_timeout: {err}") from None
    templates = _template_files(raw.get("templates") or [], base)
    return AlertmanagerConfig(
        route,
        tuple(receivers),
        tuple(intervals),
        integrations={
            str(item["name"]): integrations_of(item, global_raw, templates)
            for item in raw.get("receivers") or []
        },
        inhibit_rules=parse_inhibit_rules(raw.get("inhibit_rules") or []),
        periods=parse_time_intervals(raw),
        resolve_timeout_ms=resolve_timeout,
        original=original,
    )


def _check(route: Route, receivers: set[str], intervals: set[str]) -> None:
    if route.receiver not in receivers:
        raise RoutingError(f'undefined receiver "{route.receiver}" used in route')
    for name in (*route.mute_time_intervals, *route.active_time_intervals):
        if name not in intervals:
            raise RoutingError(f'undefined time interval "{name}" used in route')
    for child in route.routes:
        _check(child, receivers, intervals)


def _template_files(patterns: list[Any], base: Path | None) -> tuple[tuple[str, str], ...]:
    """The `templates:` files (globs, relative to the configuration's directory), each
    checked to parse as a notification template."""
    files = []
    for pattern in patterns:
        full = Path(str(pattern))
        if base is not None and not full.is_absolute():
            full = base / full
        for name in sorted(glob.glob(str(full))):
            try:
                text = Path(name).read_text(encoding="utf-8")
                Template(Path(name).name, text, variables=(), functions=TEMPLATE_FUNCTIONS)
            except OSError as err:
                raise RoutingError(f"templates: cannot read {name}: {err.strerror}") from None
            except TemplateError as err:
                raise RoutingError(f"templates: {err}") from None
            files.append((Path(name).name, text))
    return tuple(files)
