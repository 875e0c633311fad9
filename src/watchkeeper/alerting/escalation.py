"""Escalation policies and acknowledgements: what Alertmanager leaves to paging services.

A policy names the receiver whose alert groups it watches and a chain of levels, each a
receiver and a delay. A group that has notified its receiver and is still firing and not
acknowledged `after` the first notification brings in the level's receiver: it is notified
at once, and from then on hears everything the group's own receiver hears (new alerts, the
resolution, repeats). After the last level, `repeat_interval` brings the last level in again,
until the group is acknowledged or resolved. An acknowledgement (who, when, a comment) stops
the climb and the repeats; it lasts as long as the group, so the next time those alerts fire,
the policy starts over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from watchkeeper.alerting.amconfig import AlertmanagerConfig
from watchkeeper.alerting.routing import RoutingError
from watchkeeper.alerting.timeintervals import Period
from watchkeeper.model import parse_duration


@dataclass(frozen=True)
class Level:
    after_ms: int  # since the group first notified its receiver
    receiver: str


@dataclass(frozen=True)
class EscalationPolicy:
    receiver: str
    levels: tuple[Level, ...]
    repeat_interval_ms: int = 0  # 0: the last level is notified once


@dataclass(frozen=True)
class Ack:
    by: str
    at_ms: int
    comment: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "at_ms": self.at_ms, "comment": self.comment}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Ack:
        return cls(str(raw["by"]), int(raw["at_ms"]), str(raw.get("comment", "")))


@dataclass
class Escalation:
    """Where a group stands: when it first notified, how many levels it brought in, and when
    the last level was last brought in again."""

    first_notified_ms: int = 0
    levels: int = 0
    last_repeat_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "first_notified_ms": self.first_notified_ms,
            "levels": self.levels,
            "last_repeat_ms": self.last_repeat_ms,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Escalation:
        return cls(
            int(raw["first_notified_ms"]), int(raw["levels"]), int(raw.get("last_repeat_ms", 0))
        )

    def due(self, policy: EscalationPolicy, now_ms: int) -> tuple[str, ...]:
        """The receivers to bring in at `now_ms` (the next levels whose time has come, or the
        last level again); updates the state."""
        if not self.first_notified_ms:
            return ()
        brought = []
        while self.levels < len(policy.levels):
            level = policy.levels[self.levels]
            if now_ms < self.first_notified_ms + level.after_ms:
                break
            brought.append(level.receiver)
            self.levels += 1
            self.last_repeat_ms = now_ms
        if (
            not brought
            and policy.repeat_interval_ms
            and self.levels == len(policy.levels)
            and now_ms >= self.last_repeat_ms + policy.repeat_interval_ms
        ):
            brought.append(policy.levels[-1].receiver)
            self.last_repeat_ms = now_ms
        return tuple(brought)

    def next_due_ms(self, policy: EscalationPolicy) -> int | None:
        if not self.first_notified_ms:
            return None
        if self.levels < len(policy.levels):
            return self.first_notified_ms + policy.levels[self.levels].after_ms
        if policy.repeat_interval_ms:
            return self.last_repeat_ms + policy.repeat_interval_ms
        return None


@dataclass(frozen=True)
class Policies:
    """What watchkeeper adds to an Alertmanager configuration (from its own config):
    escalation policies by receiver, and receivers' own active time intervals."""

    escalations: dict[str, EscalationPolicy]
    receiver_active: dict[str, tuple[Period, ...]]


NO_POLICIES = Policies({}, {})


def build_policies(
    config: AlertmanagerConfig,
    escalation_policies: Sequence[Mapping[str, Any]],
    receiver_active: Mapping[str, Sequence[str]],
) -> Policies:
    """watchkeeper's `alerting.escalation_policies` and `alerting.receiver_active_time_intervals`
    checked against the Alertmanager configuration they name receivers and intervals of."""
    active: dict[str, tuple[Period, ...]] = {}
    for receiver, names in receiver_active.items():
        if receiver not in config.receivers:
            raise RoutingError(f"receiver_active_time_intervals: unknown receiver {receiver!r}")
        periods: list[Period] = []
        for name in names:
            if name not in config.periods:
                raise RoutingError(
                    f"receiver_active_time_intervals.{receiver}: unknown time interval {name!r}"
                )
            periods.extend(config.periods[name])
        active[receiver] = tuple(periods)
    return Policies(parse_policies(escalation_policies, config.receivers), active)


def parse_policies(
    raw: Sequence[Mapping[str, Any]], receivers: Sequence[str]
) -> dict[str, EscalationPolicy]:
    """`alerting.escalation_policies`, checked against the Alertmanager configuration's
    receivers; RoutingError naming the policy and the problem."""
    known = set(receivers)
    policies: dict[str, EscalationPolicy] = {}
    for number, item in enumerate(raw, start=1):
        where = f"escalation_policies[{number}]"
        receiver = str(item.get("receiver") or "")
        if receiver not in known:
            raise RoutingError(f"{where}: unknown receiver {receiver!r}")
        if receiver in policies:
            raise RoutingError(f"{where}: receiver {receiver!r} already has a policy")
        levels: list[Level] = []
        for index, level in enumerate(item.get("levels") or [], start=1):
            name = str(level.get("receiver") or "")
            if name not in known:
                raise RoutingError(f"{where}.levels[{index}]: unknown receiver {name!r}")
            after = _duration(level.get("after"), f"{where}.levels[{index}].after")
            if levels and after <= levels[-1].after_ms:
                raise RoutingError(
                    f"{where}.levels[{index}]: after must be later than the level before"
                )
            levels.append(Level(after, name))
        if not levels:
            raise RoutingError(f"{where}: at least one level is required")
        repeat = item.get("repeat_interval")
        policies[receiver] = EscalationPolicy(
            receiver,
            tuple(levels),
            _duration(repeat, f"{where}.repeat_interval") if repeat else 0,
        )
    return policies


def _duration(raw: Any, where: str) -> int:
    try:
        value = parse_duration(str(raw))
    except ValueError as err:
        raise RoutingError(f"{where}: {err}") from None
    if value <= 0:
        raise RoutingError(f"{where}: must be more than 0")
    return value
