"""Telegram (the Bot API's sendMessage): Alertmanager's message to a chat (or a forum topic),
as its Telegram client sends it: JSON of string parameters (chat_id, text, parse_mode, link
previews off, disable_notification, message_thread_id). In HTML parse mode (the default) what
the template prints is escaped for HTML, as Alertmanager renders it with html/template, and a
message over 4,096 characters is replaced by a notice (cut HTML would not parse); in the other
modes it is cut to 4,096 characters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from watchkeeper.alerting.notification import Integration, NotificationData, NotifyError
from watchkeeper.notify import texts
from watchkeeper.notify.gojson import document
from watchkeeper.notify.http import inline_or_file, post
from watchkeeper.rules.templates import Library

MAX_MESSAGE_RUNES = 4096
# what Alertmanager (0.28+) sends instead of an HTML message over the limit
TOO_LONG = (
    "Alertmanager notification could not be sent: message length exceeds Telegram limits.\n"
    "\t\t\tPlease check the template used for producing the message content."
)
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
    if parse_mode != "HTML":
        message = texts.truncate(message, MAX_MESSAGE_RUNES)
    elif len(message) > MAX_MESSAGE_RUNES:  # cut HTML would not parse: say so instead
        message = TOO_LONG
    params = {
        "chat_id": str(_chat_id(config)),
        "text": message,
        "disable_web_page_preview": "true",
    }
    if parse_mode:
        params["parse_mode"] = parse_mode
    if config.get("disable_notifications"):
        params["disable_notification"] = "true"
    if config.get("message_thread_id"):
        params["message_thread_id"] = str(int(config["message_thread_id"]))
    return document(params)  # a Go map of strings: keys sorted


def _chat_id(config: Any) -> int:
    if config.get("chat_id_file"):
        try:
            return int(Path(str(config["chat_id_file"])).read_text(encoding="utf-8").strip())
        except (OSError, ValueError) as err:
            raise NotifyError(f"could not read chat_id_file: {err}") from None
    return int(config.get("chat_id") or 0)


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
