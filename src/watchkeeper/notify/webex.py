"""Webex (the messages API, with the bot's token in http_config.authorization): Alertmanager's
message as markdown to a room, cut to Webex's size limit."""

from __future__ import annotations

from typing import Any

from watchkeeper.alerting.notification import NotificationData
from watchkeeper.notify import texts
from watchkeeper.notify.gojson import Struct, document
from watchkeeper.notify.http import json_sender
from watchkeeper.rules.templates import Library

MAX_MESSAGE_BYTES = 7439  # what Webex takes
DEFAULT_URL = "https://webexapis.com/v1/messages"


def payload(
    data: NotificationData, config: dict[str, Any] | Any, templates: Library | None = None
) -> bytes:
    text = config.get("message")
    message = texts.render(
        '{{ template "webex.default.message" . }}' if text is None else text,
        data,
        "webex_configs.message",
        templates,
    )
    body = Struct(markdown=texts.truncate_bytes(message, MAX_MESSAGE_BYTES))
    room = texts.render(config.get("room_id"), data, "webex_configs.room_id", templates)
    if room:  # templated since Alertmanager 0.28
        body["roomId"] = room
    return document(body)


def url_of(config: dict[str, Any] | Any) -> str:
    return str(config.get("api_url") or DEFAULT_URL)


send = json_sender(payload, url_of)
