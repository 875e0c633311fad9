"""Alerts as Alertmanager models them: what rules send and what the alert pipeline keys on.

An alert is its label set (its identity, the *fingerprint*), annotations, when it started and
when it ends, and the URL of what generated it. An alert whose `ends_at` has passed is
resolved; one sent with no end gets `resolve_timeout` added by the receiving side, and is
marked `timeout` so a later explicit end wins when two reports are merged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from watchkeeper.model.labels import Labels

# FNV-1a, 64 bit, as Prometheus' common/model hashes label sets into fingerprints
_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1
_SEPARATOR = 0xFF


def fingerprint(labels: Labels) -> int:
    """Alertmanager's fingerprint of a label set: FNV-1a over the sorted name/value pairs,
    each followed by the byte 0xff (model.LabelSet.Fingerprint)."""
    h = _FNV_OFFSET
    for name, value in sorted(labels):
        for part in (name, value):
            for byte in part.encode():
                h = ((h ^ byte) * _FNV_PRIME) & _MASK
            h = ((h ^ _SEPARATOR) * _FNV_PRIME) & _MASK
    return h


def fingerprint_text(labels: Labels) -> str:
    """As the API and the webhook payload show it: 16 hex digits."""
    return f"{fingerprint(labels):016x}"


@dataclass(frozen=True)
class Alert:
    labels: Labels
    annotations: Labels = ()
    starts_at_ms: int = 0
    ends_at_ms: int = 0  # 0: no end given
    generator_url: str = ""
    updated_at_ms: int = 0
    timeout: bool = False  # the end was set by resolve_timeout, not by the sender

    @property
    def name(self) -> str:
        return dict(self.labels).get("alertname", "")

    def resolved_at(self, now_ms: int) -> bool:
        """Whether it has ended by `now_ms` (an end in the future is not yet resolved)."""
        return self.ends_at_ms != 0 and self.ends_at_ms <= now_ms

    def merge(self, other: Alert, now_ms: int) -> Alert:
        """Two reports of one alert whose activity overlaps, as Alertmanager merges them: the
        newer report wins, with the earliest start, and the latest end unless that end came
        from a timeout (an explicit end rules)."""
        if other.updated_at_ms < self.updated_at_ms:
            return other.merge(self, now_ms)
        merged = other
        if self.starts_at_ms < other.starts_at_ms:
            merged = replace(merged, starts_at_ms=self.starts_at_ms)
        if other.resolved_at(now_ms):
            if self.resolved_at(now_ms) and self.ends_at_ms > other.ends_at_ms:
                merged = replace(merged, ends_at_ms=self.ends_at_ms)
        elif self.ends_at_ms > other.ends_at_ms and not self.timeout:
            merged = replace(merged, ends_at_ms=self.ends_at_ms)
        return merged

    def to_json(self) -> dict[str, Any]:
        return {
            "labels": [list(p) for p in self.labels],
            "annotations": [list(p) for p in self.annotations],
            "starts_at_ms": self.starts_at_ms,
            "ends_at_ms": self.ends_at_ms,
            "generator_url": self.generator_url,
            "updated_at_ms": self.updated_at_ms,
            "timeout": self.timeout,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Alert:
        return cls(
            labels=tuple((str(k), str(v)) for k, v in raw["labels"]),
            annotations=tuple((str(k), str(v)) for k, v in raw["annotations"]),
            starts_at_ms=int(raw["starts_at_ms"]),
            ends_at_ms=int(raw["ends_at_ms"]),
            generator_url=str(raw["generator_url"]),
            updated_at_ms=int(raw["updated_at_ms"]),
            timeout=bool(raw["timeout"]),
        )
