"""Alerting: what happens to alerts once rules raise them. So far the Alertmanager routing
tree (routing.py), and loading an Alertmanager configuration with Alertmanager's checks
(amconfig.py, receivers.py); grouping, silences, inhibition, notifiers, acknowledgement and
escalation come next (issue 5). May import model, store and rules; never the HTTP layer."""

from watchkeeper.alerting.amconfig import AlertmanagerConfig, load_alertmanager_config
from watchkeeper.alerting.routing import Route, RoutingError, parse_matcher, parse_route

__all__ = [
    "AlertmanagerConfig",
    "Route",
    "RoutingError",
    "load_alertmanager_config",
    "parse_matcher",
    "parse_route",
]
