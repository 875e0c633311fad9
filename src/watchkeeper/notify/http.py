"""Posting a notification over HTTP with a receiver's `http_config` (basic_auth,
authorization, bearer_token, tls_config.insecure_skip_verify) and its `timeout`, mapping
answers to NotifyError as Alertmanager's retrier does: network errors, 5xx and 429 may be
retried, other non-2xx answers may not."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from watchkeeper.alerting.notification import Integration, NotificationData, NotifyError
from watchkeeper.model import parse_duration
from watchkeeper.notify.texts import library_of
from watchkeeper.rules.templates import Library

# an integration's request body: the notification, its configuration and its templates
Payload = Callable[[NotificationData, Any, Library | None], bytes]
Send = Callable[[Any, Integration, NotificationData], Awaitable[None]]

USER_AGENT = "Alertmanager/0.25.0 (watchkeeper)"


async def post(
    client: httpx.AsyncClient,
    integration: Integration,
    url: str,
    body: bytes,
    content_type: str,
    extra_headers: dict[str, str] | None = None,
    method: str = "POST",
) -> httpx.Response:
    config = integration.config
    http_config: dict[str, Any] = dict(config.get("http_config") or {})
    headers = {"Content-Type": content_type, "User-Agent": USER_AGENT, **(extra_headers or {})}
    options: dict[str, Any] = {}
    basic = http_config.get("basic_auth")
    if basic:
        options["auth"] = httpx.BasicAuth(
            str(basic.get("username", "")), str(basic.get("password", ""))
        )
    authorization = http_config.get("authorization")
    if authorization:
        kind = str(authorization.get("type") or "Bearer")
        headers["Authorization"] = f"{kind} {authorization.get('credentials', '')}"
    elif http_config.get("bearer_token"):
        headers["Authorization"] = f"Bearer {http_config['bearer_token']}"
    timeout = parse_duration(str(config["timeout"])) / 1000 if config.get("timeout") else None
    try:
        response = await client.request(
            method, url, content=body, headers=headers, timeout=timeout or 30.0, **options
        )
    except httpx.HTTPError as err:
        raise NotifyError(f"{integration.name}: {type(err).__name__}: {err}") from None
    if response.is_success:
        return response
    retry = response.status_code >= 500 or response.status_code == 429
    detail = response.text[:200].strip()
    raise NotifyError(
        f"{integration.name}: unexpected status code {response.status_code}"
        + (f": {detail}" if detail else ""),
        retry=retry,
    )


def inline_or_file(config: Any, name: str, what: str, required: bool = True) -> str:
    """A setting given inline (`name`) or in a file (`name_file`, its text trimmed), as
    Alertmanager takes URLs, keys and passwords; NotifyError if required and neither is."""
    if config.get(name):
        return str(config[name])
    if config.get(f"{name}_file"):
        try:
            return Path(str(config[f"{name}_file"])).read_text(encoding="utf-8").strip()
        except OSError as err:
            raise NotifyError(f"read {name}_file: {err}", retry=False) from None
    if required:
        raise NotifyError(f"no {what} set", retry=False)
    return ""


def json_sender(payload: Payload, url_of: Callable[[Any], str]) -> Send:
    """The send of an integration that posts one templated JSON document to one URL (most
    of them): the URL first, so a missing one is the error even if a template fails too."""

    async def send(client: Any, integration: Integration, data: NotificationData) -> None:
        config = integration.config
        url = url_of(config)
        body = payload(data, config, library_of(integration.templates))
        await post(client, integration, url, body, "application/json")

    return send
