"""What a notification says and where it goes: Alertmanager's template data for one flush of
one alert group, and the integrations (a receiver's `*_configs` entries) that carry it.

The notifiers (the notify package) turn the data into each service's payload; this module
knows nothing of HTTP or SMTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from watchkeeper.model import Labels
from watchkeeper.model.alerts import Alert
from watchkeeper.model.gotime import location

# Alertmanager's template functions that Prometheus' lack (notification templates have both)
TEMPLATE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "join": lambda sep, items: sep.join(str(i) for i in items),
    "stringSlice": lambda *items: list(items),
    "trimSpace": lambda text: str(text).strip(),
    "safeUrl": str,
    # Alertmanager 0.26+: `{{ .StartsAt | tz "Europe/Berlin" | date "15:04 MST" }}`
    "date": lambda layout, when: when.Format(layout),
    "tz": lambda name, when: when.In(location(name)),
}

# Alertmanager's default send_resolved per integration kind (config/notifiers.go)
SEND_RESOLVED_DEFAULT = {
    "webhook": True,
    "pagerduty": True,
    "msteams": True,
    "msteamsv2": True,
    "opsgenie": True,
    "victorops": True,
    "pushover": True,
    "sns": True,
    "discord": True,
    "webex": True,
    "rocketchat": True,
    "incidentio": True,
    "jira": True,
    "mattermost": True,
    "email": False,
    "slack": False,
    "wechat": False,
    "telegram": True,
}


@dataclass(frozen=True)
class Integration:
    """One entry of a receiver's `<kind>_configs`, numbered from 0 within its kind."""

    receiver: str
    kind: str
    index: int
    config: Mapping[str, Any] = field(default_factory=dict)
    # the configuration's `templates:` files (name, text), whose {{define}}s fields can call
    templates: tuple[tuple[str, str], ...] = ()

    @property
    def send_resolved(self) -> bool:
        value = self.config.get("send_resolved")
        return SEND_RESOLVED_DEFAULT.get(self.kind, True) if value is None else bool(value)

    @property
    def name(self) -> str:
        return f"{self.receiver}/{self.kind}[{self.index}]"


# what an integration takes from `global:` when it does not say (Alertmanager's config.go)
GLOBAL_DEFAULTS = {
    "email": {
        "from": "smtp_from",
        "smarthost": "smtp_smarthost",
        "hello": "smtp_hello",
        "auth_username": "smtp_auth_username",
        "auth_password": "smtp_auth_password",
        "auth_password_file": "smtp_auth_password_file",
        "auth_identity": "smtp_auth_identity",
        "auth_secret": "smtp_auth_secret",
        "require_tls": "smtp_require_tls",
    },
    "slack": {"api_url": "slack_api_url", "api_url_file": "slack_api_url_file"},
    "pagerduty": {"url": "pagerduty_url"},
    "webex": {"api_url": "webex_api_url"},
    "telegram": {"api_url": "telegram_api_url"},
    "victorops": {
        "api_key": "victorops_api_key",
        "api_key_file": "victorops_api_key_file",
        "api_url": "victorops_api_url",
    },
    "opsgenie": {
        "api_key": "opsgenie_api_key",
        "api_key_file": "opsgenie_api_key_file",
        "api_url": "opsgenie_api_url",
    },
}


def integrations_of(
    receiver: Mapping[str, Any],
    global_config: Mapping[str, Any] | None = None,
    templates: tuple[tuple[str, str], ...] = (),
) -> tuple[Integration, ...]:
    name = str(receiver.get("name") or "")
    found: list[Integration] = []
    for key, entries in receiver.items():
        if not key.endswith("_configs") or not isinstance(entries, list):
            continue
        kind = key.removesuffix("_configs")
        defaults = GLOBAL_DEFAULTS.get(kind, {})
        for index, entry in enumerate(entries):
            config = dict(entry) if isinstance(entry, Mapping) else {}
            for field_name, global_name in defaults.items():
                if config.get(field_name) is None and (global_config or {}).get(global_name):
                    config[field_name] = global_config[global_name]  # type: ignore[index]
            found.append(Integration(name, kind, index, config, templates))
    return tuple(found)


@dataclass(frozen=True)
class NotificationData:
    """Alertmanager's template.Data, plus the group key: one group's alerts at one flush.
    Firing alerts carry no end (ends_at_ms 0), as Alertmanager sends them."""

    receiver: str
    status: str  # "firing" if any alert fires, else "resolved"
    alerts: tuple[Alert, ...]
    group_labels: Labels
    common_labels: Labels
    common_annotations: Labels
    external_url: str
    group_key: str
    now_ms: int
    truncated_alerts: int = 0

    def alert_status(self, alert: Alert) -> str:
        return "resolved" if alert.resolved_at(self.now_ms) else "firing"

    def with_alerts(self, alerts: Sequence[Alert]) -> NotificationData:
        """The same notification about fewer alerts (max_alerts, send_resolved: false): status
        and common labels and annotations are those of the alerts kept, as Alertmanager
        computes its template data after dropping the others."""
        return notification_data(
            self.receiver,
            alerts,
            self.group_labels,
            self.external_url,
            self.group_key,
            self.now_ms,
        )

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if not a.resolved_at(self.now_ms)]

    @property
    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.resolved_at(self.now_ms)]


def notification_data(
    receiver: str,
    alerts: Sequence[Alert],
    group_labels: Labels,
    external_url: str,
    group_key: str,
    now_ms: int,
) -> NotificationData:
    common_labels = _common([a.labels for a in alerts])
    common_annotations = _common([a.annotations for a in alerts])
    firing = any(not a.resolved_at(now_ms) for a in alerts)
    return NotificationData(
        receiver=receiver,
        status="firing" if firing else "resolved",
        alerts=tuple(alerts),
        group_labels=group_labels,
        common_labels=common_labels,
        common_annotations=common_annotations,
        external_url=external_url,
        group_key=group_key,
        now_ms=now_ms,
    )


def _common(sets: Sequence[Labels]) -> Labels:
    if not sets:
        return ()
    common = dict(sets[0])
    for labels in sets[1:]:
        other = dict(labels)
        common = {k: v for k, v in common.items() if other.get(k) == v}
    return tuple(sorted(common.items()))


class NotifyError(Exception):
    """A notification that did not get through; `retry` says whether trying again may help
    (a 5xx or a network error) or not (a 4xx: the request itself is wrong)."""

    def __init__(self, message: str, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


class Sender(Protocol):
    """Delivers one notification through one integration; raises NotifyError."""

    async def __call__(self, integration: Integration, data: NotificationData) -> None: ...
