"""Microsoft Teams through a Workflows (Power Automate) webhook, which replaced the retired
Office 365 connectors: Alertmanager's (0.28+) Adaptive Card, a heading with the title in the
colour of the group's status (Attention while firing, Good once resolved) and the text
(the firing and resolved alerts in markdown by default)."""

from __future__ import annotations

from typing import Any

from watchkeeper.alerting.notification import NotificationData
from watchkeeper.notify import msteams, texts
from watchkeeper.notify.gojson import Struct, document
from watchkeeper.notify.http import inline_or_file, json_sender
from watchkeeper.rules.templates import Library


def payload(
    data: NotificationData, config: dict[str, Any] | Any, templates: Library | None = None
) -> bytes:
    def field(name: str, default: str) -> str:
        value = config.get(name)
        if value is None:
            return default
        return texts.render(value, data, f"msteamsv2_configs.{name}", templates)

    heading = Struct(
        type="TextBlock",
        text=field("title", texts.subject(data)),
        weight="Bolder",
        size="Medium",
        wrap=True,
        style="heading",
        color="Attention" if data.status == "firing" else "Good",
    )
    text = Struct(type="TextBlock", text=field("text", msteams.default_text(data)), wrap=True)
    card = Struct(
        **{"$schema": "http://adaptivecards.io/schemas/adaptive-card.json"},
        type="AdaptiveCard",
        version="1.2",
        body=[heading, text],
        msteams=Struct(width="full"),
    )
    attachment = Struct(
        contentType="application/vnd.microsoft.card.adaptive", contentUrl=None, content=card
    )
    return document(Struct(type="message", attachments=[attachment]))


def url_of(config: dict[str, Any] | Any) -> str:
    return inline_or_file(config, "webhook_url", "Microsoft Teams webhook URL")


send = json_sender(payload, url_of)
