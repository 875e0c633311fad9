"""The texts of Alertmanager's default notification templates, and the fields users set.

The defaults (subject, the link back to the alerts, the list of alerts with their labels and
annotations) are written here as Alertmanager's default.tmpl renders them, so a receiver left
at its defaults reads the same as from Alertmanager; they are also the named templates
`{{ template "slack.default.title" . }}` and the like call. A field set in the configuration
is a Go template over Alertmanager's data (`.Status`, `.Receiver`, `.GroupLabels`,
`.CommonLabels`, `.CommonAnnotations` with `.SortedPairs`, `.Names`, `.Values`, `.Remove`;
`.Alerts` with `.Firing` and `.Resolved`; each alert's `.Labels`, `.Annotations`, `.StartsAt`,
`.EndsAt`, `.GeneratorURL`, `.Fingerprint`), with Alertmanager's functions, and with the
`{{ define }}`s of the configuration's `templates:` files. A template that fails fails the
notification with its error, never with a wrong text.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from watchkeeper.alerting.notification import (
    TEMPLATE_FUNCTIONS as FUNCTIONS,
)
from watchkeeper.alerting.notification import NotificationData, NotifyError
from watchkeeper.model import Labels
from watchkeeper.model.alerts import Alert, fingerprint_text
from watchkeeper.model.gotime import GoTime
from watchkeeper.rules.template_functions import LabelMap, TemplateError, escape_html_text
from watchkeeper.rules.templates import Library, Template


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


def truncate_bytes(text: str, size: int) -> str:
    """Alertmanager's TruncateInBytes: at most `size` bytes of UTF-8, whole characters, the
    last three bytes an ellipsis."""
    if len(text.encode()) <= size:
        return text
    if size <= 3:
        return "…" if size == 3 else "." * size
    kept = text.encode()[: size - 3].decode("utf-8", errors="ignore")
    return kept + "…"


def firing_and_resolved(
    data: NotificationData,
    heading: str = "",
    listing: Callable[[Sequence[Alert]], str] = alert_list,
) -> str:
    """The lists of firing and of resolved alerts, as Alertmanager's discord, telegram, webex
    and pushover default messages write them (blank lines included); Teams' with the
    headings "# " and the markdown listing."""
    out = "\n"
    if data.firing:
        out += f"\n{heading}Alerts Firing:\n" + listing(data.firing) + "\n"
    out += "\n"
    if data.resolved:
        out += f"\n{heading}Alerts Resolved:\n" + listing(data.resolved) + "\n"
    return out + "\n"


def opsgenie_description(data: NotificationData) -> str:
    """`opsgenie.default.description` (and victorops.default.state_message, the same text):
    the annotation values, then the lists (its template trims the blank lines the others
    keep)."""
    out = annotation_values(data) + "\n"
    if data.firing:
        out += "Alerts Firing:\n" + alert_list(data.firing)
    out += "\n"
    if data.resolved:
        out += "Alerts Resolved:\n" + alert_list(data.resolved)
    return out


def annotation_values(data: NotificationData) -> str:
    """`.CommonAnnotations.SortedPairs.Values | join " "`."""
    return " ".join(v for _, v in sorted_pairs(data.common_annotations))


class KV(LabelMap):
    """Alertmanager's template.KV: a label set with its methods; a missing key reads as ""
    (Alertmanager runs its templates with missingkey=zero)."""

    template_methods = ("SortedPairs", "Names", "Values", "Remove")

    def SortedPairs(self) -> Pairs:  # noqa: N802 (Go's name, as templates call it)
        return Pairs(Pair(k, v) for k, v in sorted_pairs(tuple(self.items())))

    def Names(self) -> list[str]:  # noqa: N802
        return self.SortedPairs().Names()

    def Values(self) -> list[str]:  # noqa: N802
        return self.SortedPairs().Values()

    def Remove(self, names: Sequence[str]) -> KV:  # noqa: N802
        return KV({k: v for k, v in self.items() if k not in set(names)})


class Pair:
    template_fields = ("Name", "Value")

    def __init__(self, name: str, value: str) -> None:
        self.Name, self.Value = name, value


class Pairs(list[Pair]):
    template_methods = ("Names", "Values")

    def Names(self) -> list[str]:  # noqa: N802
        return [p.Name for p in self]

    def Values(self) -> list[str]:  # noqa: N802
        return [p.Value for p in self]


class AlertData:
    """One alert as templates see it (template.Alert)."""

    template_fields = (
        "Status",
        "Labels",
        "Annotations",
        "StartsAt",
        "EndsAt",
        "GeneratorURL",
        "Fingerprint",
    )

    def __init__(self, alert: Alert, status: str) -> None:
        self.alert = alert
        self.Status = status
        self.Labels = KV(alert.labels)
        self.Annotations = KV(alert.annotations)
        self.StartsAt = GoTime.of_alert_time(alert.starts_at_ms)
        self.EndsAt = GoTime.of_alert_time(alert.ends_at_ms)
        self.GeneratorURL = alert.generator_url
        self.Fingerprint = fingerprint_text(alert.labels)


class Alerts(list[AlertData]):
    template_methods = ("Firing", "Resolved")

    def Firing(self) -> Alerts:  # noqa: N802
        return Alerts(a for a in self if a.Status == "firing")

    def Resolved(self) -> Alerts:  # noqa: N802
        return Alerts(a for a in self if a.Status == "resolved")


class Data:
    """Alertmanager's template.Data for one notification."""

    template_fields = (
        "Receiver",
        "Status",
        "Alerts",
        "GroupLabels",
        "CommonLabels",
        "CommonAnnotations",
        "ExternalURL",
    )

    def __init__(self, data: NotificationData) -> None:
        self.notification = data
        self.Receiver = receiver_name(data)
        self.Status = data.status
        self.Alerts = Alerts(AlertData(a, data.alert_status(a)) for a in data.alerts)
        self.GroupLabels = KV(data.group_labels)
        self.CommonLabels = KV(data.common_labels)
        self.CommonAnnotations = KV(data.common_annotations)
        self.ExternalURL = data.external_url


def _of_data(build: Callable[[NotificationData], str]) -> Callable[[Any], str]:
    def named(dot: Any) -> str:
        if not isinstance(dot, Data):
            raise TemplateError("this template needs the notification's data (.)")
        return build(dot.notification)

    return named


def _of_alerts(dot: Any) -> str:
    alerts = [a.alert for a in dot] if isinstance(dot, list) else []
    return alert_list(alerts)


BUILTINS: dict[str, Callable[[Any], str]] = {
    "__alertmanager": lambda dot: "Alertmanager",
    "__alertmanagerURL": _of_data(alertmanager_url),
    "__subject": _of_data(subject),
    "__description": lambda dot: "",
    "__text_alert_list": _of_alerts,
    "slack.default.title": _of_data(subject),
    "slack.default.username": lambda dot: "Alertmanager",
    "slack.default.fallback": _of_data(lambda d: f"{subject(d)} | {alertmanager_url(d)}"),
    "slack.default.callbackid": lambda dot: "",
    "slack.default.pretext": lambda dot: "",
    "slack.default.titlelink": _of_data(alertmanager_url),
    "slack.default.iconemoji": lambda dot: "",
    "slack.default.iconurl": lambda dot: "",
    "slack.default.text": lambda dot: "",
    "slack.default.footer": lambda dot: "",
    "pagerduty.default.description": _of_data(subject),
    "pagerduty.default.client": lambda dot: "Alertmanager",
    "pagerduty.default.clientURL": _of_data(alertmanager_url),
    "pagerduty.default.instances": _of_alerts,
    "email.default.subject": _of_data(subject),
    "msteams.default.title": _of_data(subject),
    "msteams.default.summary": _of_data(subject),
    "msteamsv2.default.title": _of_data(subject),
    "discord.default.title": _of_data(subject),
    "discord.default.message": _of_data(firing_and_resolved),
    "telegram.default.message": _of_data(firing_and_resolved),
    "opsgenie.default.message": _of_data(subject),
    "opsgenie.default.description": _of_data(opsgenie_description),
    "opsgenie.default.source": _of_data(alertmanager_url),
    "victorops.default.state_message": _of_data(opsgenie_description),
    "victorops.default.entity_display_name": _of_data(subject),
    "victorops.default.monitoring_tool": lambda dot: "Alertmanager",
    "pushover.default.title": _of_data(subject),
    "pushover.default.message": _of_data(lambda d: annotation_values(d) + firing_and_resolved(d)),
    "pushover.default.url": _of_data(alertmanager_url),
    "webex.default.message": _of_data(lambda d: annotation_values(d) + firing_and_resolved(d)),
}


def library(files: Sequence[tuple[str, str]]) -> Library:
    """The named templates notifications can call: the {{define}}s of the configuration's
    `templates:` files (name, text), then Alertmanager's defaults. TemplateError if a file
    does not parse."""
    parsed = [Template(name, text, variables=(), functions=FUNCTIONS) for name, text in files]
    return Library(parsed, BUILTINS)


DEFAULT_LIBRARY = Library((), BUILTINS)


@functools.lru_cache(maxsize=64)
def library_of(files: tuple[tuple[str, str], ...]) -> Library:
    """The library of an integration's template files (the same files share one)."""
    return library(files) if files else DEFAULT_LIBRARY


@functools.lru_cache(maxsize=1024)
def _parsed(text: str) -> Template:
    return Template("notification", text, variables=(), functions=FUNCTIONS)


def render(
    text: Any,
    data: NotificationData,
    where: str,
    templates: Library | None = None,
    html: bool = False,
) -> str:
    """A configured field: a plain string as it is, a template run over the data; with
    `html`, what it prints is escaped as Go's html/template escapes text between tags
    (Alertmanager's TmplHTML: email bodies, Telegram's HTML mode)."""
    value = "" if text is None else str(text)
    if "{{" not in value:
        return value
    escape = escape_html_text if html else None
    try:
        return _parsed(value).render(
            Data(data), {}, library=templates or DEFAULT_LIBRARY, escape=escape
        )
    except TemplateError as err:
        raise NotifyError(f"{where}: {err}", retry=False) from None
