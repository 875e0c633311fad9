"""VictorOps (Splunk On-Call's REST endpoint): Alertmanager's event, one per group (entity_id:
the SHA-256 of the group key): CRITICAL (or the configured INFO or WARNING) while it fires,
RECOVERY once resolved, with the state message, display name, monitoring tool and custom
fields; posted to the API URL, the API key and the routing key."""

from __future__ import annotations

import urllib.parse
from typing import Any

from watchkeeper.alerting.notification import Integration, NotificationData
from watchkeeper.notify import texts
from watchkeeper.notify.gojson import document
from watchkeeper.notify.http import inline_or_file, post
from watchkeeper.notify.pagerduty import dedup_key
from watchkeeper.rules.templates import Library

MAX_MESSAGE_RUNES = 20480
DEFAULT_URL = "https://alert.victorops.com/integrations/generic/20131114/alert/"
DEFAULTS = {
    "message_type": "CRITICAL",
    "state_message": '{{ template "victorops.default.state_message" . }}',
    "entity_display_name": '{{ template "victorops.default.entity_display_name" . }}',
    "monitoring_tool": '{{ template "victorops.default.monitoring_tool" . }}',
}


def payload(
    data: NotificationData, config: dict[str, Any] | Any, templates: Library | None = None
) -> bytes:
    def tmpl(text: Any, where: str) -> str:
        return texts.render(text, data, f"victorops_configs.{where}", templates)

    def field(name: str) -> str:
        text = config.get(name)
        return tmpl(DEFAULTS[name] if text is None else text, name)

    kind = field("message_type")
    if data.status == "firing" and kind not in ("INFO", "WARNING", "CRITICAL"):
        kind = "CRITICAL"
    if data.status == "resolved":
        kind = "RECOVERY"
    event = {
        "message_type": kind,
        "entity_id": dedup_key(data.group_key),
        "entity_display_name": field("entity_display_name"),
        "state_message": texts.truncate(field("state_message"), MAX_MESSAGE_RUNES),
        "monitoring_tool": field("monitoring_tool"),
    }
    for name, text in (config.get("custom_fields") or {}).items():
        event[str(name)] = tmpl(text, f"custom_fields.{name}")
    return document(event)  # a Go map of strings: keys sorted


async def send(client: Any, integration: Integration, data: NotificationData) -> None:
    config = integration.config
    templates = texts.library_of(integration.templates)
    key = inline_or_file(config, "api_key", "VictorOps API key")
    routing = texts.render(
        config.get("routing_key"), data, "victorops_configs.routing_key", templates
    )
    # the path escaped as Go writes a URL's path
    path = urllib.parse.quote(f"{key}/{routing}", safe="/$&+,:;=@")
    url = f"{config.get('api_url') or DEFAULT_URL}{path}"
    await post(client, integration, url, payload(data, config, templates), "application/json")
