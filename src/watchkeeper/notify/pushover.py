"""Pushover (the messages API): Alertmanager's request, its parameters in the query string of
an empty POST: token, user, title (250 characters), message (1,024 characters, trimmed,
"(no details)" if empty; escaped for HTML with `html`), url (512), url_title, priority
(emergency while firing, normal once resolved, by default), retry, expire, device, sound,
ttl, monospace."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

from watchkeeper.alerting.notification import Integration, NotificationData, NotifyError
from watchkeeper.model import parse_duration
from watchkeeper.notify import texts
from watchkeeper.notify.http import post
from watchkeeper.rules.templates import Library

API_URL = "https://api.pushover.net/1/messages.json"
DEFAULTS = {
    "title": '{{ template "pushover.default.title" . }}',
    "message": '{{ template "pushover.default.message" . }}',
    "url": '{{ template "pushover.default.url" . }}',
    "priority": '{{ if eq .Status "firing" }}2{{ else }}0{{ end }}',
    "retry": "1m",
    "expire": "1h",
}


def query(
    data: NotificationData, config: dict[str, Any] | Any, templates: Library | None = None
) -> str:
    """The query string Alertmanager sends (url.Values.Encode: keys sorted)."""

    def tmpl(text: Any, where: str, html: bool = False) -> str:
        return texts.render(text, data, f"pushover_configs.{where}", templates, html=html)

    def field(name: str, html: bool = False) -> str:
        text = config.get(name)
        return tmpl(DEFAULTS.get(name, "") if text is None else text, name, html)

    def seconds(name: str) -> str:
        text = config.get(name, DEFAULTS.get(name, "0s"))
        return str(parse_duration(str(text)) // 1000)

    html = bool(config.get("html"))
    message = texts.truncate(field("message", html=html), 1024).strip() or "(no details)"
    params = {
        "token": tmpl(_secret(config, "token"), "token"),
        "user": tmpl(_secret(config, "user_key"), "user_key"),
        "title": texts.truncate(field("title"), 250),
        "message": message,
        "url": texts.truncate(field("url"), 512),
        "url_title": field("url_title"),
        "priority": field("priority"),
        "retry": seconds("retry"),
        "expire": seconds("expire"),
        "device": field("device"),
        "sound": field("sound"),
    }
    if html:
        params["html"] = "1"
    if config.get("monospace"):
        params["monospace"] = "1"
    ttl = seconds("ttl") if config.get("ttl") else "0"
    if int(ttl) > 0:
        params["ttl"] = ttl
    return urllib.parse.urlencode(sorted(params.items()), quote_via=urllib.parse.quote_plus)


def _secret(config: Any, name: str) -> str:
    """Inline, or the file's content as it is (Alertmanager does not trim it)."""
    if config.get(name):
        return str(config[name])
    try:
        return Path(str(config.get(f"{name}_file") or "")).read_text(encoding="utf-8")
    except OSError as err:
        raise NotifyError(f"read {name}_file: {err}", retry=False) from None


async def send(
    client: Any, integration: Integration, data: NotificationData, api_url: str = API_URL
) -> None:
    body = query(data, integration.config, texts.library_of(integration.templates))
    await post(client, integration, f"{api_url}?{body}", b"", "text/plain")
