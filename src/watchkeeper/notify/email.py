"""Email over SMTP: a multipart message with a text and an HTML body.

Settings are Alertmanager's `email_configs` (with `global: smtp_*` defaults): `to`, `from`,
`smarthost` (host:port; port 465 is TLS from the start), `hello`, `auth_username` and
`auth_password` (or `_file`), `require_tls` (STARTTLS, on by default, as in Alertmanager),
`headers`, `subject` (a header), `text`, `html`. The subject defaults to Alertmanager's
(`[FIRING:2] ...`); the bodies default to the alerts' labels, annotations and sources, and a
link to them. The send runs in a worker thread (smtplib blocks).
"""

from __future__ import annotations

import asyncio
import html
import smtplib
import ssl
import time
import uuid
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from watchkeeper.alerting.notification import Integration, NotificationData, NotifyError
from watchkeeper.notify import texts
from watchkeeper.notify.http import inline_or_file
from watchkeeper.rules.templates import Library

TIMEOUT_S = 30.0


def default_text(data: NotificationData) -> str:
    parts = [texts.subject(data).rstrip(), ""]
    if data.firing:
        parts += [f"Firing ({len(data.firing)}):", texts.alert_list(data.firing)]
    if data.resolved:
        parts += [f"Resolved ({len(data.resolved)}):", texts.alert_list(data.resolved)]
    parts.append(f"View in watchkeeper: {texts.alertmanager_url(data)}")
    return "\n".join(parts) + "\n"


def default_html(data: NotificationData) -> str:
    esc = html.escape
    rows = []
    for title, alerts in (("Firing", data.firing), ("Resolved", data.resolved)):
        if not alerts:
            continue
        rows.append(f"<h3>{title} ({len(alerts)})</h3>")
        for alert in alerts:
            labels = "".join(
                f"<li><b>{esc(k)}</b> = {esc(v)}</li>" for k, v in texts.sorted_pairs(alert.labels)
            )
            notes = "".join(
                f"<li><b>{esc(k)}</b> = {esc(v)}</li>"
                for k, v in texts.sorted_pairs(alert.annotations)
            )
            source = esc(alert.generator_url)
            rows.append(
                f"<p>Labels:</p><ul>{labels}</ul><p>Annotations:</p><ul>{notes}</ul>"
                f'<p><a href="{source}">Source</a></p><hr>'
            )
    link = esc(texts.alertmanager_url(data))
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>{esc(texts.subject(data))}</title></head><body>"
        f"<h2>{esc(texts.subject(data))}</h2>{''.join(rows)}"
        f'<p><a href="{link}">View in watchkeeper</a></p></body></html>\n'
    )


def message(
    data: NotificationData,
    config: dict[str, Any] | Any,
    templates: Library | None = None,
) -> EmailMessage:
    def field(name: str, default: str, html: bool = False) -> str:
        value = config.get(name)
        if value is None:
            return default
        where = f"email_configs.{name}"
        return texts.render(value, data, templates=templates, where=where, html=html)

    to = field("to", "")
    sender = field("from", "")
    if not to or not sender:
        raise NotifyError("email_configs needs to and from (or global smtp_from)", retry=False)
    headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = texts.render(
        headers.pop("Subject", headers.pop("subject", config.get("subject") or ""))
        or texts.subject(data),
        data,
        "email_configs.headers.Subject",
        templates,
    )
    msg["Date"] = formatdate(time.time(), localtime=False)
    msg["Message-Id"] = f"<{uuid.uuid4().hex}@watchkeeper>"
    for name, value in headers.items():
        if name.lower() not in {"from", "to", "date", "message-id"}:
            msg[name] = texts.render(
                value, data, templates=templates, where=f"email_configs.headers.{name}"
            )
    msg.set_content(field("text", default_text(data)))
    # as Alertmanager's TmplHTML: what the template prints is escaped for HTML
    msg.add_alternative(field("html", default_html(data), html=True), subtype="html")
    return msg


def _password(config: dict[str, Any] | Any) -> str:
    return inline_or_file(config, "auth_password", "SMTP password", required=False)


def deliver(config: dict[str, Any] | Any, msg: EmailMessage) -> None:
    """Send over SMTP (blocking): TLS from the start on port 465, else STARTTLS when required
    or offered; AUTH when a username is set."""
    host, _, port_text = str(config.get("smarthost") or "").rpartition(":")
    if not host or not port_text.isdigit():
        raise NotifyError("email_configs.smarthost must be host:port", retry=False)
    port = int(port_text)
    hello = str(config.get("hello") or "localhost")
    require_tls = config.get("require_tls")
    require_tls = True if require_tls is None else bool(require_tls)
    tls_config = config.get("tls_config") or {}
    context = ssl.create_default_context()
    if tls_config.get("insecure_skip_verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    recipients = [a.strip() for a in str(msg["To"]).split(",") if a.strip()]
    try:
        if port == 465:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                host, port, local_hostname=hello, timeout=TIMEOUT_S, context=context
            )
        else:
            smtp = smtplib.SMTP(host, port, local_hostname=hello, timeout=TIMEOUT_S)
        with smtp:
            smtp.ehlo()
            if port != 465:
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                    smtp.ehlo()
                elif require_tls:
                    raise NotifyError(
                        f"'require_tls' is true (default) but {host}:{port} does not advertise "
                        "the STARTTLS extension",
                        retry=False,
                    )
            if config.get("auth_username"):
                smtp.login(str(config["auth_username"]), _password(config))
            smtp.send_message(msg, from_addr=str(msg["From"]), to_addrs=recipients)
    except smtplib.SMTPResponseException as err:
        # 4xx is temporary (try again), 5xx permanent
        raise NotifyError(
            f"SMTP {err.smtp_code}: {err.smtp_error!r}", retry=err.smtp_code < 500
        ) from None
    except (smtplib.SMTPException, OSError) as err:
        raise NotifyError(f"SMTP: {type(err).__name__}: {err}") from None


async def send(client: Any, integration: Integration, data: NotificationData) -> None:
    config = integration.config
    templates = texts.library_of(integration.templates)
    await asyncio.to_thread(deliver, config, message(data, config, templates))
