"""OpsGenie (Alert API v2): Alertmanager's requests. While the group fires, an alert is
created (alias: the SHA-256 of the group key, so OpsGenie keeps one alert per group) with the
message, description, details (common labels, then configured ones), source, responders,
tags, note, priority, entity and actions; with `update_alerts`, its message and description
are updated too. Once the group has resolved, the alert is closed by its alias."""

from __future__ import annotations

from typing import Any

from watchkeeper.alerting.notification import Integration, NotificationData
from watchkeeper.notify import texts
from watchkeeper.notify.gojson import Struct, document
from watchkeeper.notify.http import inline_or_file, post
from watchkeeper.notify.pagerduty import dedup_key
from watchkeeper.rules.templates import Library

MAX_MESSAGE_RUNES = 130
DEFAULT_URL = "https://api.opsgenie.com/"
DEFAULTS = {
    "message": '{{ template "opsgenie.default.message" . }}',
    "description": '{{ template "opsgenie.default.description" . }}',
    "source": '{{ template "opsgenie.default.source" . }}',
}

Request = tuple[str, str, bytes]  # method, URL, body


def requests(
    data: NotificationData, config: dict[str, Any] | Any, templates: Library | None = None
) -> list[Request]:
    def tmpl(text: Any, where: str) -> str:
        return texts.render(
            "" if text is None else text, data, f"opsgenie_configs.{where}", templates
        )

    def field(name: str) -> str:
        text = config.get(name)
        return tmpl(DEFAULTS.get(name, "") if text is None else text, name)

    base = str(config.get("api_url") or DEFAULT_URL)
    alias = dedup_key(data.group_key)
    by_alias = f"{base}v2/alerts/{alias}/%s?identifierType=alias"
    if data.status == "resolved":
        return [("POST", by_alias % "close", document(Struct(source=field("source"))))]
    details = dict(data.common_labels)
    for name, text in (config.get("details") or {}).items():
        details[str(name)] = tmpl(text, "details")
    message = Struct(
        alias=alias,
        message=texts.truncate(field("message"), MAX_MESSAGE_RUNES),
        description=field("description"),
        details=details,  # a Go map: keys sorted
        source=field("source"),
        responders=_responders(config.get("responders") or [], tmpl),
        tags=_split(field("tags")),
        note=field("note"),
        priority=field("priority"),
        entity=field("entity"),
        actions=_split(field("actions")),
    )
    for name in ("description", "responders", "tags", "note", "priority", "entity", "actions"):
        if not message[name]:  # omitempty
            del message[name]
    out = [("POST", f"{base}v2/alerts", document(message))]
    if config.get("update_alerts"):
        text = Struct(message=message["message"]) if message["message"] else Struct()
        out.append(("PUT", by_alias % "message", document(text)))
        described = message.get("description", "")
        text = Struct(description=described) if described else Struct()
        out.append(("PUT", by_alias % "description", document(text)))
    return out


def _responders(raw: list[Any], tmpl: Any) -> list[Struct]:
    out: list[Struct] = []
    for entry in raw:
        responder = {
            k: tmpl(entry.get(k), "responders") for k in ("id", "name", "username", "type")
        }
        if not any(responder.values()):
            continue  # filled from labels that were not there
        if responder["type"] == "teams":
            out.extend(
                Struct(name=tmpl(team, "responders"), type="team")
                for team in _split(responder["name"])
            )
            continue
        item = Struct((k, v) for k, v in responder.items() if v and k != "type")
        item["type"] = responder["type"]
        out.append(item)
    return out


def _split(text: str) -> list[str]:
    """Go's safeSplit: the trimmed text split at commas, empty parts left out."""
    return [part for part in text.strip().split(",") if part]


async def send(client: Any, integration: Integration, data: NotificationData) -> None:
    config = integration.config
    templates = texts.library_of(integration.templates)
    key = inline_or_file(config, "api_key", "OpsGenie API key")
    header = {
        "Authorization": "GenieKey "
        + texts.render(key, data, "opsgenie_configs.api_key", templates)
    }
    for method, url, body in requests(data, config, templates):
        await post(client, integration, url, body, "application/json", header, method=method)
