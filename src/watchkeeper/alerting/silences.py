"""Silences, as Alertmanager keeps them: matchers and a time window that mute matching alerts.

A silence is *pending* before it starts, *active* until it ends, then *expired*; expired
silences are kept for `retention` so they can be looked at and recreated. Updating a silence
keeps its id when only its comment, author or future times change (Alertmanager's canUpdate);
otherwise the old one is expired and the update gets a new id. Every change is written to the
state store before it is acknowledged.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from watchkeeper.model import Labels, Matcher, MatchOp


class SilenceError(ValueError):
    """A silence that cannot be set or expired; the message says why."""


class SilenceNotFoundError(SilenceError):
    pass


class SilenceState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at_ms: int
    ends_at_ms: int
    created_by: str
    comment: str
    updated_at_ms: int = 0

    def state(self, now_ms: int) -> SilenceState:
        if self.ends_at_ms <= now_ms:
            return SilenceState.EXPIRED
        if self.starts_at_ms > now_ms:
            return SilenceState.PENDING
        return SilenceState.ACTIVE

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels.get(m.name, "")) for m in self.matchers)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [[m.name, m.op.value, m.value] for m in self.matchers],
            "starts_at_ms": self.starts_at_ms,
            "ends_at_ms": self.ends_at_ms,
            "created_by": self.created_by,
            "comment": self.comment,
            "updated_at_ms": self.updated_at_ms,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Silence:
        return cls(
            id=raw["id"],
            matchers=tuple(Matcher(n, MatchOp(op), v) for n, op, v in raw["matchers"]),
            starts_at_ms=raw["starts_at_ms"],
            ends_at_ms=raw["ends_at_ms"],
            created_by=raw["created_by"],
            comment=raw["comment"],
            updated_at_ms=raw.get("updated_at_ms", 0),
        )


# persist(silence) writes it durably; forget(id) removes it (after retention)
Persist = Callable[[Silence], None]
Forget = Callable[[str], None]


class Silences:
    """One tenant's silences."""

    def __init__(
        self,
        retention_ms: int = 120 * 3_600_000,
        persist: Persist | None = None,
        forget: Forget | None = None,
    ) -> None:
        self.retention_ms = retention_ms
        self._persist = persist or (lambda s: None)
        self._forget = forget or (lambda i: None)
        self._by_id: dict[str, Silence] = {}
        self._lock = threading.Lock()
        self.version = 0  # bumped on every change: a flush can tell its view is current

    def load(self, silences: list[Silence]) -> None:
        with self._lock:
            for silence in silences:
                self._by_id[silence.id] = silence

    def get(self, silence_id: str) -> Silence:
        try:
            return self._by_id[silence_id]
        except KeyError:
            raise SilenceNotFoundError(f"silence {silence_id} not found") from None

    def all(self) -> list[Silence]:
        return list(self._by_id.values())

    def set(self, silence: Silence, now_ms: int) -> str:
        """Create (no id) or update a silence; its id, which is new if the update cannot be
        made in place."""
        _validate(silence, now_ms)
        with self._lock:
            if silence.id:
                old = self._by_id.get(silence.id)
                if old is None:
                    raise SilenceNotFoundError(f"silence {silence.id} not found")
                if _can_update(old, silence, now_ms):
                    self._store(replace(silence, updated_at_ms=now_ms))
                    return silence.id
                if old.state(now_ms) is not SilenceState.EXPIRED:
                    self._expire(old, now_ms)
            starts = max(silence.starts_at_ms, now_ms)
            created = replace(
                silence, id=str(uuid.uuid4()), starts_at_ms=starts, updated_at_ms=now_ms
            )
            self._store(created)
            return created.id

    def expire(self, silence_id: str, now_ms: int) -> None:
        with self._lock:
            silence = self.get(silence_id)
            if silence.state(now_ms) is SilenceState.EXPIRED:
                raise SilenceError(f"silence {silence_id} already expired")
            self._expire(silence, now_ms)

    def muting(self, labels: Labels, now_ms: int) -> list[str]:
        """The ids of the active silences that mute an alert with these labels."""
        by_name = dict(labels)
        return sorted(
            s.id
            for s in self._by_id.values()
            if s.state(now_ms) is SilenceState.ACTIVE and s.matches(by_name)
        )

    def gc(self, now_ms: int) -> int:
        """Drop silences expired longer than the retention; how many went."""
        with self._lock:
            old = [s.id for s in self._by_id.values() if s.ends_at_ms + self.retention_ms <= now_ms]
            for silence_id in old:
                del self._by_id[silence_id]
                self._forget(silence_id)
            if old:
                self.version += 1
            return len(old)

    def _expire(self, silence: Silence, now_ms: int) -> None:
        if silence.state(now_ms) is SilenceState.PENDING:
            expired = replace(silence, starts_at_ms=now_ms, ends_at_ms=now_ms)
        else:
            expired = replace(silence, ends_at_ms=now_ms)
        self._store(replace(expired, updated_at_ms=now_ms))

    def _store(self, silence: Silence) -> None:
        self._persist(silence)  # durable first: an acknowledged change survives a crash
        self._by_id[silence.id] = silence
        self.version += 1


def _validate(silence: Silence, now_ms: int) -> None:
    if not silence.matchers:
        raise SilenceError("at least one matcher required")
    if all(m.matches("") for m in silence.matchers):
        raise SilenceError("at least one matcher must not match the empty string")
    if silence.ends_at_ms < silence.starts_at_ms:
        raise SilenceError("end time must not be before start time")
    if silence.ends_at_ms < now_ms:
        raise SilenceError("end time can't be in the past")
    if not silence.created_by:
        raise SilenceError("createdBy is required")
    if not silence.comment:
        raise SilenceError("comment is required")


def _can_update(old: Silence, new: Silence, now_ms: int) -> bool:
    if _matcher_keys(old) != _matcher_keys(new):
        return False
    state = old.state(now_ms)
    if state is SilenceState.ACTIVE:
        return new.starts_at_ms == old.starts_at_ms and new.ends_at_ms >= now_ms
    if state is SilenceState.PENDING:
        return new.starts_at_ms >= now_ms
    return False


def _matcher_keys(silence: Silence) -> list[tuple[str, str, str]]:
    return [(m.name, m.op.value, m.value) for m in silence.matchers]
