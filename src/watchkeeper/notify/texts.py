"""The texts of Alertmanager's default notification templates, and the fields users set.

The defaults (subject, the link back to the alerts, the list of alerts with their labels and
annotations) are written here as Alertmanager's default.tmpl renders them, so a receiver left
at its defaults reads the same as from Alertmanager. A field set in the configuration is a Go
template over Alertmanager's data (`.Status`, `.Receiver`, `.GroupLabels.x`,
`.CommonLabels.x`, `.CommonAnnotations.x`, `.ExternalURL`, `range .Alerts` with `.Labels`,
`.Annotations`, `.StartsAt`, `.GeneratorURL`, ...) run by the rules' template engine; what
that engine lacks (`{{ template }}`, `.Alerts.Firing`, `.SortedPairs`) fails the notification
with the template's error, never with a wrong text.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Sequence
from typing import Any

from watchkeeper.alerting.notification import NotificationData, NotifyError
from watchkeeper.model import Labels
from watchkeeper.model.alerts import Alert, fingerprint_text
from watchkeeper.notify.gojson import go_time
from watchkeeper.rules.template_functions import TemplateError
from watchkeeper.rules.templates import Template


def sorted_pairs(labels: Labels) -> list[tuple[str, str]]:
    """Alertmanager's KV.SortedPairs: `alertname` first, then the others by name."""
    pairs = sorted(labels)
    first = [p for p in pairs if p[0] == "alertname"]
    return first + [p for p in pairs if p[0] != "alertname"]


def receiver_name(data: NotificationData) -> str:
    """The receiver as the template data holds it (Go's regexp.QuoteMeta of the name)."""
    return "".join("\\" + ch if ch in "\\.+*?()|[]{}^$" else ch for ch in data.receiver)


def subject(data: NotificationData) -> str:
    """`__subject`: [FIRING:2] group label values (other common label values)."""
    status = data.status.upper()
    if data.status == "firing":
        status += f":{len(data.firing)}"
    text = f"[{status}] " + " ".join(v for _, v in sorted_pairs(data.group_labels)) + " "
    if len(data.common_labels) > len(data.group_labels):
        grouped = {k for k, _ in data.group_labels}
        rest = tuple((k, v) for k, v in data.common_labels if k not in grouped)
        text += "(" + " ".join(v for _, v in sorted_pairs(rest)) + ")"
    return text


def alertmanager_url(data: NotificationData) -> str:
    """`__alertmanagerURL`: the alerts page of this receiver."""
    return f"{data.external_url}/#/alerts?receiver={urllib.parse.quote_plus(receiver_name(data))}"


def alert_list(alerts: Sequence[Alert]) -> str:
    """`__text_alert_list`: each alert's labels, annotations and source."""
    out = []
    for alert in alerts:
        out.append("Labels:\n")
        out.extend(f" - {k} = {v}\n" for k, v in sorted_pairs(alert.labels))
        out.append("Annotations:\n")
        out.extend(f" - {k} = {v}\n" for k, v in sorted_pairs(alert.annotations))
        out.append(f"Source: {alert.generator_url}\n")
    return "".join(out)


def truncate(text: str, runes: int) -> str:
    """Alertmanager's TruncateInRunes: at most `runes` characters, the last an ellipsis."""
    return text if len(text) <= runes else text[: runes - 1] + "…"


def template_data(data: NotificationData) -> dict[str, Any]:
    """Alertmanager's template.Data as the template engine reads it."""
    return {
        "Receiver": receiver_name(data),
        "Status": data.status,
        "Alerts": [
            {
                "Status": data.alert_status(a),
                "Labels": dict(a.labels),
                "Annotations": dict(a.annotations),
                "StartsAt": go_time(a.starts_at_ms),
                "EndsAt": go_time(a.ends_at_ms),
                "GeneratorURL": a.generator_url,
                "Fingerprint": fingerprint_text(a.labels),
            }
            for a in data.alerts
        ],
        "GroupLabels": dict(data.group_labels),
        "CommonLabels": dict(data.common_labels),
        "CommonAnnotations": dict(data.common_annotations),
        "ExternalURL": data.external_url,
    }


@functools.lru_cache(maxsize=1024)
def _parsed(text: str) -> Template:
    return Template("notification", text, variables=())


def render(text: Any, data: NotificationData, where: str) -> str:
    """A configured field: a plain string as it is, a template run over the data."""
    value = "" if text is None else str(text)
    if "{{" not in value:
        return value
    try:
        return _parsed(value).render(template_data(data), {})
    except TemplateError as err:
        raise NotifyError(f"{where}: {err}", retry=False) from None
