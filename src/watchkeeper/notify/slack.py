"""Slack (incoming webhooks and chat.postMessage): Alertmanager's Slack message, with its
defaults (username Alertmanager, the subject as title linking to the alerts, danger/good
colour) and every field templated as configured."""

from __future__ import annotations

from typing import Any

from watchkeeper.alerting.notification import NotificationData
from watchkeeper.notify import texts
from watchkeeper.notify.gojson import Struct, document
from watchkeeper.notify.http import inline_or_file, json_sender
from watchkeeper.rules.templates import Library

MAX_TITLE_RUNES = 1024


def payload(
    data: NotificationData,
    config: dict[str, Any] | Any,
    templates: Library | None = None,
) -> bytes:
    def field(name: str, default: str) -> str:
        value = config.get(name)
        return (
            default
            if value is None
            else texts.render(value, data, templates=templates, where=f"slack_configs.{name}")
        )

    title = texts.subject(data)
    link = texts.alertmanager_url(data)
    color = "danger" if data.status == "firing" else "good"
    attachment = Struct(
        title=texts.truncate(field("title", title), MAX_TITLE_RUNES),
        title_link=field("title_link", link),
        pretext=field("pretext", ""),
        text=field("text", ""),
        fallback=field("fallback", f"{title} | {link}"),
        callback_id=field("callback_id", ""),
        fields=[
            Struct(
                title=texts.render(f.get("title"), data, "slack_configs.fields.title", templates),
                value=texts.render(f.get("value"), data, "slack_configs.fields.value", templates),
                short=bool(
                    f["short"] if f.get("short") is not None else config.get("short_fields")
                ),
            )
            for f in config.get("fields") or []
        ],
        actions=[_action(a, data, templates) for a in config.get("actions") or []],
        image_url=field("image_url", ""),
        thumb_url=field("thumb_url", ""),
        footer=field("footer", ""),
        color=field("color", color),
        mrkdwn_in=list(config.get("mrkdwn_in") or ["fallback", "pretext", "text"]),
    )
    # Go leaves out empty values of fields tagged omitempty
    for name in ("title", "title_link", "pretext", "image_url", "thumb_url", "color"):
        if not attachment[name]:
            del attachment[name]
    for name in ("fields", "actions"):
        if not attachment[name]:
            del attachment[name]
    request = Struct(
        channel=field("channel", ""),
        username=field("username", "Alertmanager"),
        icon_emoji=field("icon_emoji", ""),
        icon_url=field("icon_url", ""),
        link_names=bool(config.get("link_names")),
        attachments=[attachment],
    )
    for name in ("channel", "username", "icon_emoji", "icon_url", "link_names"):
        if not request[name]:
            del request[name]
    return document(request)


def _action(action: dict[str, Any], data: NotificationData, templates: Library | None) -> Struct:
    """A button: a link (url) or a message action (name, value, confirm), every text
    templated; as Alertmanager, a url drops the message action's fields."""

    def text(owner: dict[str, Any], name: str, where: str) -> str:
        return texts.render(owner.get(name) or "", data, f"slack_configs.{where}", templates)

    link = bool(action.get("url"))
    out = Struct(
        type=text(action, "type", "actions.type"),
        text=text(action, "text", "actions.text"),
        url=text(action, "url", "actions.url"),
        style=text(action, "style", "actions.style"),
        name="" if link else text(action, "name", "actions.name"),
        value="" if link else text(action, "value", "actions.value"),
    )
    confirm = None if link else action.get("confirm")
    if confirm is not None:
        rendered = [
            (name, text(confirm, name, f"actions.confirm.{name}"))
            for name in ("text", "title", "ok_text", "dismiss_text")
        ]
        out["confirm"] = Struct((name, value) for name, value in rendered if value)
    for name in ("type", "text", "url", "style", "name", "value"):
        if not out[name]:  # omitempty
            del out[name]
    return out


def url_of(config: dict[str, Any] | Any) -> str:
    return inline_or_file(config, "api_url", "Slack API URL")


send = json_sender(payload, url_of)
