"""The sender the dispatcher calls: picks the integration's notifier by kind, with one shared
HTTP client (connection reuse, no per-notification TLS handshake)."""

from __future__ import annotations

import httpx

from watchkeeper.alerting.notification import Integration, NotificationData, NotifyError
from watchkeeper.notify import (
    discord,
    email,
    msteams,
    msteamsv2,
    opsgenie,
    pagerduty,
    pushover,
    slack,
    telegram,
    victorops,
    webex,
    webhook,
)

SENDERS = {
    "webhook": webhook.send,
    "slack": slack.send,
    "pagerduty": pagerduty.send,
    "msteams": msteams.send,
    "email": email.send,
    "discord": discord.send,
    "webex": webex.send,
    "opsgenie": opsgenie.send,
    "telegram": telegram.send,
    "victorops": victorops.send,
    "pushover": pushover.send,
    "msteamsv2": msteamsv2.send,
}
SUPPORTED_KINDS = frozenset(SENDERS)


class Notifiers:
    def __init__(self, verify_tls: bool = True) -> None:
        self.client = httpx.AsyncClient(verify=verify_tls, follow_redirects=False)

    async def __call__(self, integration: Integration, data: NotificationData) -> None:
        send = SENDERS.get(integration.kind)
        if send is not None:
            await send(self.client, integration, data)
            return
        raise NotifyError(
            f"{integration.name}: {integration.kind} notifications are not supported yet",
            retry=False,
        )

    async def close(self) -> None:
        await self.client.aclose()
