"""The notification log: what each integration was last told about each alert group.

After a notification gets through, the group's firing and resolved alerts (by fingerprint) and
the time are written under (group key, integration). The next flush notifies only if that
changes the picture: new firing alerts, newly resolved ones (if the integration sends
resolved), everything resolved, or repeat_interval passed (Alertmanager's DedupStage). Entries
are kept for `retention` and written to the state store, so a restart does not repeat
notifications.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Entry:
    firing: frozenset[int]
    resolved: frozenset[int]
    timestamp_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "firing": sorted(self.firing),
            "resolved": sorted(self.resolved),
            "timestamp_ms": self.timestamp_ms,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Entry:
        return cls(frozenset(raw["firing"]), frozenset(raw["resolved"]), raw["timestamp_ms"])


def needs_update(
    entry: Entry | None,
    firing: frozenset[int],
    resolved: frozenset[int],
    send_resolved: bool,
    repeat_ms: int,
    now_ms: int,
) -> bool:
    """Whether a flush with these alerts is news to the integration (DedupStage.needsUpdate)."""
    if entry is None:
        return bool(firing)
    if not firing <= entry.firing:  # an alert it has not heard fire
        return True
    if not firing:
        # all resolved: tell it if it knew of firing alerts (whatever send_resolved says, so
        # the log forgets them); alerts that fired and resolved within one interval are news
        # to nobody
        return bool(entry.firing)
    if send_resolved and not resolved <= entry.resolved:
        return True
    return entry.timestamp_ms < now_ms - repeat_ms


class NotificationLog:
    def __init__(
        self,
        retention_ms: int = 120 * 3_600_000,
        persist: Callable[[str, Entry], None] | None = None,
        forget: Callable[[str], None] | None = None,
    ) -> None:
        self.retention_ms = retention_ms
        self._entries: dict[str, Entry] = {}
        self._persist = persist or (lambda k, e: None)
        self._forget = forget or (lambda k: None)
        self._lock = threading.Lock()

    @staticmethod
    def key(group_key: str, integration: str) -> str:
        return f"{integration}\x00{group_key}"

    def load(self, entries: dict[str, Entry]) -> None:
        self._entries.update(entries)

    def get(self, key: str) -> Entry | None:
        return self._entries.get(key)

    def log(self, key: str, entry: Entry) -> None:
        with self._lock:
            self._persist(key, entry)
            self._entries[key] = entry

    def gc(self, now_ms: int) -> int:
        with self._lock:
            old = [
                k for k, e in self._entries.items() if e.timestamp_ms + self.retention_ms <= now_ms
            ]
            for key in old:
                del self._entries[key]
                self._forget(key)
        return len(old)
