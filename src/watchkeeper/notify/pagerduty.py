"""PagerDuty Events API v2: a trigger while any alert of the group fires, a resolve when all
have resolved, one incident per group (dedup_key: the SHA-256 of the group key), with
Alertmanager's defaults (summary = the subject, client and client_url, details with the
firing and resolved alerts and their counts, severity `error`, source = client)."""

from __future__ import annotations

import hashlib
from typing import Any

from watchkeeper.alerting.notification import Integration, NotificationData, NotifyError
from watchkeeper.notify import texts
from watchkeeper.notify.gojson import Struct, document
from watchkeeper.notify.http import inline_or_file, post
from watchkeeper.rules.templates import Library

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
MAX_SUMMARY_RUNES = 1024


def dedup_key(group_key: str) -> str:
    return hashlib.sha256(group_key.encode()).hexdigest()


def details(
    data: NotificationData, config: dict[str, Any] | Any, templates: Library | None = None
) -> dict[str, str]:
    found = {
        "firing": texts.alert_list(data.firing),
        "resolved": texts.alert_list(data.resolved),
        "num_firing": str(len(data.firing)),
        "num_resolved": str(len(data.resolved)),
    }
    for name, value in (config.get("details") or {}).items():
        found[str(name)] = texts.render(
            value, data, templates=templates, where=f"pagerduty_configs.details.{name}"
        )
    return found


def payload(
    data: NotificationData,
    config: dict[str, Any] | Any,
    routing_key: str,
    templates: Library | None = None,
) -> bytes:
    def field(name: str, default: str) -> str:
        value = config.get(name)
        if value is None:
            return default
        return texts.render(value, data, templates=templates, where=f"pagerduty_configs.{name}")

    client = field("client", "Alertmanager")
    body = Struct(
        payload=Struct(
            summary=texts.truncate(field("description", texts.subject(data)), MAX_SUMMARY_RUNES),
            source=field("source", "") or client,  # as Alertmanager: the client by default
            severity=field("severity", "") or "error",
            **{k: field(k, "") for k in ("class", "component", "group") if field(k, "")},
            custom_details=details(data, config, templates),
        ),
    )
    message = Struct(
        routing_key=texts.render(routing_key, data, "pagerduty_configs.routing_key", templates)
    )
    message["dedup_key"] = dedup_key(data.group_key)
    message["event_action"] = "trigger" if data.status == "firing" else "resolve"
    message["payload"] = body["payload"]
    client_url = field("client_url", texts.alertmanager_url(data))
    if client:
        message["client"] = client
    if client_url:
        message["client_url"] = client_url
    images = [
        Struct(
            src=texts.render(i.get("src"), data, "images.src", templates),
            alt=texts.render(i.get("alt"), data, "images.alt", templates),
            href=texts.render(i.get("href"), data, "images.href", templates),
        )
        for i in config.get("images") or []
    ]
    links = [
        Struct(
            href=texts.render(i.get("href"), data, "links.href", templates),
            text=texts.render(i.get("text"), data, "links.text", templates),
        )
        for i in config.get("links") or []
    ]
    images = [i for i in images if i["src"]]
    links = [x for x in links if x["href"]]
    if images:
        message["images"] = images
    if links:
        message["links"] = links
    if not message["routing_key"]:
        raise NotifyError("routing key cannot be empty", retry=False)
    return document(message)


def routing_key_of(config: dict[str, Any] | Any) -> str:
    if not (config.get("routing_key") or config.get("routing_key_file")) and (
        config.get("service_key") or config.get("service_key_file")
    ):
        raise NotifyError(
            "the Events API v1 (service_key) is not supported; use routing_key", retry=False
        )
    return inline_or_file(config, "routing_key", "PagerDuty routing key")


async def send(client: Any, integration: Integration, data: NotificationData) -> None:
    config = integration.config
    body = payload(data, config, routing_key_of(config), texts.library_of(integration.templates))
    await post(client, integration, str(config.get("url") or EVENTS_URL), body, "application/json")
