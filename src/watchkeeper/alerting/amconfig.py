"""An Alertmanager configuration file, as far as routing needs it: the route tree, the
receivers' names and the time intervals' names, with Alertmanager's checks that tie them
together and its checks of `global:` and of the receivers' credentials (receivers.py). The
integrations (email, Slack, PagerDuty, ...) themselves come with the notifiers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from watchkeeper.alerting.receivers import check_global, check_inhibit_rules, check_receivers
from watchkeeper.alerting.routing import Route, RoutingError, parse_route


@dataclass(frozen=True)
class AlertmanagerConfig:
    route: Route
    receivers: tuple[str, ...]
    time_intervals: tuple[str, ...]


def load_alertmanager_config(path: Path) -> AlertmanagerConfig:
    """Read and check one file; RoutingError naming the problem."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise RoutingError(f"{path}: cannot read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise RoutingError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise RoutingError(f"{path}: not an Alertmanager configuration")
    return parse_alertmanager_config(raw)


def parse_alertmanager_config(raw: dict[str, Any]) -> AlertmanagerConfig:
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
    return AlertmanagerConfig(route, tuple(receivers), tuple(intervals))


def _check(route: Route, receivers: set[str], intervals: set[str]) -> None:
    if route.receiver not in receivers:
        raise RoutingError(f'undefined receiver "{route.receiver}" used in route')
    for name in (*route.mute_time_intervals, *route.active_time_intervals):
        if name not in intervals:
            raise RoutingError(f'undefined time interval "{name}" used in route')
    for child in route.routes:
        _check(child, receivers, intervals)
