"""Telegram (the Bot API's sendMessage): Alertmanager's message to a chat, as its Telegram
client sends it: JSON of string parameters (chat_id, text, parse_mode, link previews off,
disable_notification), the text cut to 4,096 characters. In HTML parse mode (the default)
what the template prints is escaped for HTML, as Alertmanager renders it with html/template."""

from __future__ import annotations

import json
from typing import Any

from watchkeeper.alerting.notification import Integration, NotificationData, NotifyError
from watchkeeper.notify import texts
from watchkeeper.notify.gojson import document
from watchkeeper.notify.http import inline_or_file, post
from watchkeeper.rules.templates import Library

MAX_MESSAGE_RUNES = 4096
DEFAULT_URL = "https://api.telegram.org"


def payload(
    data: NotificationData, config: dict[str, Any] | Any, templates: Library | None = None
) -> bytes:
    parse_mode = str(config.get("parse_mode", "HTML") or "")
    text = config.get("message")
    message = texts.render(
        '{{ template "telegram.default.message" . }}' if text is None else text,
        data,
        "telegram_configs.message",
        templates,
        html=parse_mode == "HTML",
    )
    params = {
        "chat_id": str(config.get("chat_id")),
        "text": texts.truncate(message, MAX_MESSAGE_RUNES),
        "disable_web_page_preview": "true",
    }
    if parse_mode:
        params["parse_mode"] = parse_mode
    if config.get("disable_notifications"):
        params["disable_notification"] = "true"
    return document(params)  # a Go map of strings: keys sorted


async def send(client: Any, integration: Integration, data: NotificationData) -> None:
    config = integration.config
    token = inline_or_file(config, "bot_token", "Telegram bot token")
    url = f"{config.get('api_url') or DEFAULT_URL}/bot{token}/sendMessage"
    body = payload(data, config, texts.library_of(integration.templates))
    answer = await post(client, integration, url, body, "application/json")
    try:
        reply = json.loads(answer.content)
    except ValueError:
        reply = None
    if not isinstance(reply, dict) or not reply.get("ok"):
        what = reply.get("description") if isinstance(reply, dict) else answer.text[:200]
        raise NotifyError(f"{integration.name}: Telegram refused the message: {what}")
