"""Microsoft Teams (incoming webhook, MessageCard): Alertmanager's (0.27+) card with its
defaults: the subject as title and summary, the firing and resolved alerts as markdown text,
red while firing and green once resolved."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from watchkeeper.alerting.notification import NotificationData
from watchkeeper.model.alerts import Alert
from watchkeeper.notify import texts
from watchkeeper.notify.gojson import Struct, document
from watchkeeper.notify.http import inline_or_file, json_sender
from watchkeeper.rules.templates import Library

FIRING, RESOLVED = "8C1A1A", "2DC72D"


def markdown_list(alerts: Sequence[Alert]) -> str:
    """`__text_alert_list_markdown`."""
    out = []
    for alert in alerts:
        out.append("\nLabels:\n")
        out.extend(f"  - {k} = {v}\n" for k, v in texts.sorted_pairs(alert.labels))
        out.append("\nAnnotations:\n")
        out.extend(f"  - {k} = {v}\n" for k, v in texts.sorted_pairs(alert.annotations))
        out.append(f"\nSource: {alert.generator_url}\n")
    return "".join(out)


def default_text(data: NotificationData) -> str:
    """`msteams.default.text` (and msteamsv2's), blank lines and all."""
    return texts.firing_and_resolved(data, "# ", markdown_list)


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
            else texts.render(value, data, templates=templates, where=f"msteams_configs.{name}")
        )

    return document(
        Struct(
            **{"@context": "http://schema.org/extensions"},
            type="MessageCard",
            title=field("title", texts.subject(data)),
            summary=field("summary", texts.subject(data)),
            text=field("text", default_text(data)),
            themeColor=FIRING if data.status == "firing" else RESOLVED,
        )
    )


def url_of(config: dict[str, Any] | Any) -> str:
    return inline_or_file(config, "webhook_url", "Microsoft Teams webhook URL")


send = json_sender(payload, url_of)
