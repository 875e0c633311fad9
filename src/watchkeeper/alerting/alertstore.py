"""The alerts a tenant's Alertmanager knows: every report merged by fingerprint.

Reports of one alert whose activity overlaps are merged (Alert.merge); a report after the
alert ended starts it anew. Resolved alerts stay until garbage collection so late readers see
them end; the API lists only those not yet resolved. As Alertmanager's provider/mem, except
that what is stored is also handed to `persist` (and what is dropped to `forget`), so the
alerts outlive a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import replace

from watchkeeper.model.alerts import Alert, fingerprint


class AlertStore:
    def __init__(
        self,
        resolve_timeout_ms: int = 300_000,
        persist: Callable[[list[Alert]], None] | None = None,
        forget: Callable[[list[Alert]], None] | None = None,
    ) -> None:
        self.resolve_timeout_ms = resolve_timeout_ms
        self._alerts: dict[int, Alert] = {}
        self._lock = threading.Lock()
        self._persist = persist or (lambda alerts: None)
        self._forget = forget or (lambda alerts: None)

    def receive(self, alert: Alert, now_ms: int) -> Alert:
        """A report as received over the API: a missing start is now (or the end, if given),
        a missing end is now plus resolve_timeout and marked as a timeout."""
        starts = alert.starts_at_ms or alert.ends_at_ms or now_ms
        timeout = alert.ends_at_ms == 0
        ends = now_ms + self.resolve_timeout_ms if timeout else alert.ends_at_ms
        return replace(
            alert, starts_at_ms=starts, ends_at_ms=ends, timeout=timeout, updated_at_ms=now_ms
        )

    def put(self, alerts: Iterable[Alert], now_ms: int) -> list[Alert]:
        """Store reports (already given their times); the alerts as stored, to be routed."""
        stored = []
        with self._lock:
            for report in alerts:
                fp = fingerprint(report.labels)
                old = self._alerts.get(fp)
                alert = report
                if old is not None and (
                    old.starts_at_ms < report.ends_at_ms < old.ends_at_ms
                    or old.starts_at_ms < report.starts_at_ms < old.ends_at_ms
                ):
                    alert = old.merge(report, now_ms)
                self._alerts[fp] = alert
                stored.append(alert)
        self._persist(stored)
        return stored

    def get(self, fp: int) -> Alert | None:
        return self._alerts.get(fp)

    def all(self) -> list[Alert]:
        with self._lock:
            return list(self._alerts.values())

    def gc(self, now_ms: int) -> list[Alert]:
        """Drop resolved alerts; those dropped."""
        with self._lock:
            gone = [a for a in self._alerts.values() if a.resolved_at(now_ms)]
            for alert in gone:
                del self._alerts[fingerprint(alert.labels)]
        if gone:
            self._forget(gone)
        return gone
