"""Discord (a channel's webhook): Alertmanager's message, one embed with the title (256
characters), the message (4,096) and the colour of the group's status, and the content (2,000),
username and avatar URL; the texts templated as configured."""

from __future__ import annotations

from typing import Any

from watchkeeper.alerting.notification import NotificationData
from watchkeeper.notify import texts
from watchkeeper.notify.gojson import Struct, document
from watchkeeper.notify.http import inline_or_file, json_sender
from watchkeeper.rules.templates import Library

RED, GREEN = 0x992D22, 0x2ECC71


def payload(
    data: NotificationData, config: dict[str, Any] | Any, templates: Library | None = None
) -> bytes:
    def field(name: str, default: str) -> str:
        text = config.get(name)
        return texts.render(
            default if text is None else text, data, f"discord_configs.{name}", templates
        )

    embed = Struct(
        title=texts.truncate(field("title", '{{ template "discord.default.title" . }}'), 256),
        description=texts.truncate(
            field("message", '{{ template "discord.default.message" . }}'), 4096
        ),
        color=RED if data.status == "firing" else GREEN,
    )
    # content, username and avatar_url: Alertmanager 0.27+
    message = Struct(content=texts.truncate(field("content", ""), 2000), embeds=[embed])
    if config.get("username"):
        message["username"] = str(config["username"])
    if config.get("avatar_url"):
        message["avatar_url"] = str(config["avatar_url"])
    return document(message)


def url_of(config: dict[str, Any] | Any) -> str:
    return inline_or_file(config, "webhook_url", "Discord webhook URL")


send = json_sender(payload, url_of)
