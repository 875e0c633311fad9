"""What current Alertmanager (0.28+) added to the Discord, Telegram and Webex messages, which
the Alertmanager 0.25 peer test cannot compare: Discord's content, username, avatar and
limits; Telegram's forum topics, chat_id_file and over-long HTML; Webex's templated room."""

from __future__ import annotations

import json
from pathlib import Path

from watchkeeper.alerting.notification import notification_data
from watchkeeper.model.alerts import Alert
from watchkeeper.notify import discord, telegram, webex

NOW = 1_800_000_000_000


def _data(count: int = 1) -> object:
    alerts = [
        Alert(labels=(("alertname", "Disk"), ("i", str(i)), ("room", "r-9")), starts_at_ms=NOW)
        for i in range(count)
    ]
    return notification_data("ops", alerts, (("alertname", "Disk"),), "http://am", "{}", NOW)


def test_discord_content_username_avatar_and_limits() -> None:
    config = {
        "webhook_url": "http://hook",
        "title": "x" * 300,
        "content": "{{ .CommonLabels.alertname }} <@here>",
        "username": "wk",
        "avatar_url": "http://img/a.png",
    }
    body = json.loads(discord.payload(_data(), config))  # type: ignore[arg-type]
    assert list(body) == ["content", "embeds", "username", "avatar_url"]  # Go's field order
    assert body["content"] == "Disk <@here>"
    assert body["embeds"][0]["title"] == "x" * 255 + "…"
    assert (body["username"], body["avatar_url"]) == ("wk", "http://img/a.png")
    plain = json.loads(discord.payload(_data(), {"webhook_url": "http://hook"}))  # type: ignore[arg-type]
    assert list(plain) == ["content", "embeds"] and plain["content"] == ""


def test_telegram_topics_chat_id_file_and_long_messages(tmp_path: Path) -> None:
    chat = tmp_path / "chat"
    chat.write_text("-100777\n")
    config = {"bot_token": "t", "chat_id_file": str(chat), "message_thread_id": 12}
    body = json.loads(telegram.payload(_data(), config))  # type: ignore[arg-type]
    assert body["chat_id"] == "-100777" and body["message_thread_id"] == "12"
    assert body["parse_mode"] == "HTML"
    # 60 alerts make the default message longer than Telegram takes: HTML is not cut
    long = json.loads(telegram.payload(_data(60), {"bot_token": "t", "chat_id": 1}))  # type: ignore[arg-type]
    assert long["text"] == telegram.TOO_LONG
    cut = json.loads(
        telegram.payload(_data(60), {"bot_token": "t", "chat_id": 1, "parse_mode": "Markdown"})  # type: ignore[arg-type]
    )
    assert len(cut["text"]) == 4096 and cut["text"].endswith("…")


def test_webex_room_is_templated() -> None:
    config = {"room_id": "{{ .CommonLabels.room }}", "message": "hi"}
    assert json.loads(webex.payload(_data(), config)) == {"markdown": "hi", "roomId": "r-9"}  # type: ignore[arg-type]
