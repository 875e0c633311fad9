"""Alerting: what happens to alerts once rules (or clients) raise them, Alertmanager's way.

Owns the routing tree (routing.py), loading an Alertmanager configuration with its checks
(amconfig.py, receivers.py), the alerts store (alertstore.py), aggregation groups and their
timers (dispatch.py), silences, inhibition, time intervals, the notification log (nflog.py)
and the built-in Alertmanager that holds them per tenant (service.py). Delivering a
notification is the notify package's, handed in as a Sender. May import model, store and
rules; never the HTTP layer."""

from watchkeeper.alerting.amconfig import (
    AlertmanagerConfig,
    load_alertmanager_config,
    parse_alertmanager_text,
)
from watchkeeper.alerting.routing import Route, RoutingError, parse_matcher, parse_route
from watchkeeper.alerting.service import AlertingService, AlertmanagerSetup, AlertmanagerSetups

__all__ = [
    "AlertingService",
    "AlertmanagerConfig",
    "AlertmanagerSetup",
    "AlertmanagerSetups",
    "Route",
    "RoutingError",
    "load_alertmanager_config",
    "parse_alertmanager_text",
    "parse_matcher",
    "parse_route",
]
