"""The alert history: every state change and notification, with its time, searchable later.

Events: `firing` (an alert starts, or starts again after it ended), `resolved`, `notified` and
`notify_failed` (per integration, with the error), `escalated` (a level brought in),
`acknowledged`. Each carries the alert's (or group's) labels and the fields people look for:
severity, category, service and runbook_url, read from labels and annotations.

Events are written behind (store.statedb.WriteBehind: batches, one transaction and one sync
each), so recording never waits for the disk on the event loop; stopping writes what is
queued.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from watchkeeper.model import Labels, Matcher
from watchkeeper.store import StateStore
from watchkeeper.store.statedb import WriteBehind

CATEGORIES = frozenset({"infrastructure", "application", "security", "business", "performance"})
Event = tuple[str, int, str, str, dict[str, Any]]  # tenant, time, event, alertname, body


def alert_fields(labels: Labels, annotations: Labels = ()) -> dict[str, str]:
    """severity, category, service and runbook_url of an alert, where it says them: labels
    first, then annotations (runbook_url is usually an annotation). A category outside the
    five known ones is left out; service falls back to service_name, then job."""
    by_label, by_annotation = dict(labels), dict(annotations)

    def find(*names: str) -> str:
        for name in names:
            value = by_label.get(name) or by_annotation.get(name)
            if value:
                return value
        return ""

    fields = {
        "severity": find("severity"),
        "category": find("category").lower(),
        "service": find("service", "service_name", "job"),
        "runbook_url": find("runbook_url", "runbook"),
    }
    if fields["category"] not in CATEGORIES:
        fields["category"] = ""
    return {k: v for k, v in fields.items() if v}


class History:
    def __init__(self, state: StateStore | None, writer: WriteBehind | None) -> None:
        self.state = state
        self.writer = writer

    def record(self, events: Iterable[Event]) -> None:
        if self.writer is None:
            return
        for tenant, at_ms, event, name, body in events:
            self.writer.history(tenant, at_ms, event, name, body)

    def search(
        self,
        tenant: str,
        start_ms: int,
        end_ms: int,
        matchers: list[Matcher],
        limit: int,
    ) -> list[dict[str, Any]]:
        """Events of alerts (or groups) whose labels match, oldest first, at most `limit`
        (the newest ones when there are more)."""
        if self.state is None:
            return []
        if self.writer is not None:
            self.writer.flush()  # what was recorded before the question is in the answer
        name = next(
            (m.value for m in matchers if m.name == "alertname" and m.op.value == "="), None
        )
        found = []
        for at_ms, event, body in self.state.history(tenant, start_ms, end_ms, name):
            labels: Mapping[str, str] = body.get("labels") or {}
            if all(m.matches(labels.get(m.name, "")) for m in matchers):
                found.append({"time_ms": at_ms, "event": event, **body})
        return found[-limit:] if limit else found
