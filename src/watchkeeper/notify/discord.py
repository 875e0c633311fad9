"""Discord (a channel's webhook): Alertmanager's message, one embed with the title, the
message and the colour of the group's status; both texts templated as configured."""

from __future__ import annotations

from typing import Any

from watchkeeper.alerting.notification import Integration, NotificationData
from watchkeeper.notify import texts
from watchkeeper.notify.gojson import Struct, document
from watchkeeper.notify.http import inline_or_file, post
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
        title=field("title", '{{ template "discord.default.title" . }}'),
        description=field("message", '{{ template "discord.default.message" . }}'),
        color=RED if data.status == "firing" else GREEN,
    )
    return document(Struct(content="", embeds=[embed]))


async def send(client: Any, integration: Integration, data: NotificationData) -> None:
    config = integration.config
    url = inline_or_file(config, "webhook_url", "Discord webhook URL")
    body = payload(data, config, texts.library_of(integration.templates))
    await post(client, integration, url, body, "application/json")
