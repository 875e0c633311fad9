"""The webhook integration: Alertmanager's webhook payload (version 4), byte for byte.

The body is what Alertmanager's json.Encoder writes for its webhook Message: the template data
(receiver, status, alerts, groupLabels, commonLabels, commonAnnotations, externalURL) then
version, groupKey and truncatedAlerts. `max_alerts` keeps the first alerts and counts the
rest in truncatedAlerts. A 5xx or 429 answer is retried; another non-2xx is not.
"""

from __future__ import annotations

from typing import Any

from watchkeeper.alerting.notification import Integration, NotificationData
from watchkeeper.model.alerts import fingerprint_text
from watchkeeper.notify.gojson import Struct, document, go_time
from watchkeeper.notify.http import inline_or_file, post


def payload(data: NotificationData, max_alerts: int = 0) -> bytes:
    truncated = 0
    if max_alerts and len(data.alerts) > max_alerts:
        truncated = len(data.alerts) - max_alerts
        data = data.with_alerts(data.alerts[:max_alerts])
    alerts = data.alerts
    return document(
        Struct(
            receiver=data.receiver,
            status=data.status,
            alerts=[
                Struct(
                    status=data.alert_status(a),
                    labels=dict(a.labels),
                    annotations=dict(a.annotations),
                    startsAt=go_time(a.starts_at_ms),
                    endsAt=go_time(a.ends_at_ms),
                    generatorURL=a.generator_url,
                    fingerprint=fingerprint_text(a.labels),
                )
                for a in alerts
            ],
            groupLabels=dict(data.group_labels),
            commonLabels=dict(data.common_labels),
            commonAnnotations=dict(data.common_annotations),
            externalURL=data.external_url,
            version="4",
            groupKey=data.group_key,
            truncatedAlerts=truncated,
        )
    )


def url_of(config: dict[str, Any] | Any) -> str:
    return inline_or_file(config, "url", "webhook URL")


async def send(client: Any, integration: Integration, data: NotificationData) -> None:
    config = integration.config
    body = payload(data, int(config.get("max_alerts") or 0))
    await post(client, integration, url_of(config), body, "application/json")
