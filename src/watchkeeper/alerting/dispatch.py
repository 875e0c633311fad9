"""Grouping and notifying: one tenant's Alertmanager after its alerts are stored.

Each stored alert is routed (routing.py) and joins, per matching route, the aggregation group
of its `group_by` label values. A new group is flushed `group_wait` after it was created (at
once if its first alert started longer ago than that), then every `group_interval`. A flush
takes the group's alerts (firing ones without an end), drops those silenced or inhibited,
stops if the route is inside a mute time interval or outside its active ones, and sends the
rest to each of the receiver's integrations that the notification log says has news
(nflog.py), retrying with backoff until the next flush is due. When every integration got it,
the resolved alerts that did not change meanwhile leave the group; an empty group is gone.
As Alertmanager's dispatch and notify packages; a slow or failing integration delays nothing
but its own group.

Beyond Alertmanager: a receiver's escalation policy brings more receivers into a group that
stays unacknowledged (escalation.py); an acknowledged group is not repeated; a receiver may
have its own active time intervals (outside them it hears nothing, and hears the news at the
first flush inside); every state change and notification is an event of the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import logging
import random
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from watchkeeper.alerting.alertstore import AlertStore
from watchkeeper.alerting.escalation import Ack, Escalation, EscalationPolicy
from watchkeeper.alerting.history import Event, alert_fields
from watchkeeper.alerting.inhibit import Inhibitor, InhibitRule
from watchkeeper.alerting.nflog import Entry, NotificationLog, needs_update
from watchkeeper.alerting.notification import (
    Integration,
    NotificationData,
    NotifyError,
    Sender,
    notification_data,
)
from watchkeeper.alerting.routing import Route
from watchkeeper.alerting.silences import Silences
from watchkeeper.alerting.timeintervals import Period, in_any
from watchkeeper.model import Labels, format_label_set
from watchkeeper.model.alerts import Alert, fingerprint, fingerprint_text

log = logging.getLogger(__name__)

# Alertmanager gives a flush until the next one is due, but never less than this
MIN_FLUSH_TIMEOUT_MS = 10_000


@dataclass
class DispatchConfig:
    """What a tenant's dispatcher works from: an Alertmanager configuration, built."""

    route: Route
    integrations: dict[str, tuple[Integration, ...]]
    inhibit_rules: tuple[InhibitRule, ...] = ()
    time_intervals: dict[str, tuple[Period, ...]] = field(default_factory=dict)
    external_url: str = ""
    escalations: dict[str, EscalationPolicy] = field(default_factory=dict)
    # receiver -> the time intervals outside which it is not notified
    receiver_active: dict[str, tuple[Period, ...]] = field(default_factory=dict)


def group_id(group_key: str) -> str:
    """A group's id in the API (acknowledgements): 16 hex digits of its key's hash."""
    return fingerprint_text((("group", group_key),))


@dataclass
class AggregationGroup:
    route: Route
    labels: Labels
    key: str
    alerts: dict[int, Alert] = field(default_factory=dict)
    next_flush_ms: int = 0
    flushing: bool = False
    ack: Ack | None = None
    escalation: Escalation = field(default_factory=Escalation)
    # receivers an escalation brought in, and those to notify at the next flush whatever the
    # notification log says (a level brought in again)
    escalated: list[str] = field(default_factory=list)
    forced: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.fingerprint = fingerprint(self.labels)
        self.id = group_id(self.key)


@dataclass
class DispatchHooks:
    """Where a dispatcher reports: history events, and the durable state of acknowledgements
    and escalations (by group key; None removes it)."""

    record: Callable[[list[Event]], None] = lambda events: None
    save_ack: Callable[[str, Ack | None], None] = lambda key, ack: None
    save_escalation: Callable[[str, Escalation | None], None] = lambda key, e: None
    saved_acks: dict[str, Ack] = field(default_factory=dict)
    saved_escalations: dict[str, Escalation] = field(default_factory=dict)


@dataclass(frozen=True)
class Sent:
    """One notification that got through (or not): for history and metrics."""

    integration: Integration
    data: NotificationData
    error: str = ""


class Dispatcher:
    def __init__(
        self,
        config: DispatchConfig,
        alerts: AlertStore,
        silences: Silences,
        nflog: NotificationLog,
        sender: Sender,
        clock: Callable[[], int],
        on_sent: Callable[[Sent], None] | None = None,
        hooks: DispatchHooks | None = None,
        tenant: str = "",
    ) -> None:
        self.config = config
        self.alerts = alerts
        self.silences = silences
        self.nflog = nflog
        self.sender = sender
        self.clock = clock
        self.on_sent = on_sent or (lambda s: None)
        self.hooks = hooks or DispatchHooks()
        self.tenant = tenant
        self.groups: dict[tuple[int, int], AggregationGroup] = {}
        # when groups are due: (time, sequence, slot), stale entries skipped when they come up
        # (a group's time moved, or it is gone), so a wake costs the groups due, not all
        self._due: list[tuple[int, int, tuple[int, int]]] = []
        self._sequence = 0
        self._escalating: set[tuple[int, int]] = set()  # groups whose receiver has a policy
        self._routes = _route_index(config.route)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- alerts in

    def put(self, alerts: Sequence[Alert], restoring: bool = False) -> None:
        """Store alerts (already given their times) and route them into their groups;
        `restoring`: alerts read back at start, whose events the history already has."""
        now = self.clock()
        before = [self.alerts.get(fingerprint(a.labels)) for a in alerts]
        events = []
        for old, alert in zip(before, self.alerts.put(alerts, now), strict=True):
            self._route(alert, now)
            was_firing = old is not None and not old.resolved_at(now)
            if alert.resolved_at(now) == was_firing:
                event = "resolved" if was_firing else "firing"
                events.append(self._alert_event(now, event, alert))
        if not restoring:
            self.hooks.record(events)
        self._wake.set()

    def _alert_event(self, now: int, event: str, alert: Alert, **extra: Any) -> Event:
        body = {
            "fingerprint": fingerprint_text(alert.labels),
            "labels": dict(alert.labels),
            "annotations": dict(alert.annotations),
            "starts_at_ms": alert.starts_at_ms,
            "ends_at_ms": alert.ends_at_ms,
            **alert_fields(alert.labels, alert.annotations),
            **extra,
        }
        return (self.tenant, now, event, alert.name, body)

    def _group_event(self, now: int, event: str, group: AggregationGroup, **extra: Any) -> Event:
        alerts = list(group.alerts.values())
        first = alerts[0] if alerts else None
        body = {
            "group_id": group.id,
            "group_key": group.key,
            "labels": dict(group.labels),
            "receiver": group.route.receiver,
            "alerts": [fingerprint_text(a.labels) for a in alerts],
            **(alert_fields(first.labels, first.annotations) if first else {}),
            **extra,
        }
        return (self.tenant, now, event, dict(group.labels).get("alertname", ""), body)

    def _route(self, alert: Alert, now: int) -> None:
        by_name = dict(alert.labels)
        for route in self.config.route.match(by_name):
            if route.group_by_all:
                labels = alert.labels
            else:
                labels = tuple((k, v) for k, v in alert.labels if k in route.group_by)
            slot = (self._routes[id(route)], fingerprint(labels))
            group = self.groups.get(slot)
            if group is None:
                group = AggregationGroup(
                    route, labels, f"{route.key}:{format_label_set(labels)}", next_flush_ms=now
                )
                if alert.starts_at_ms + route.group_wait_ms >= now:
                    group.next_flush_ms = now + route.group_wait_ms
                group.ack = self.hooks.saved_acks.pop(group.key, None)
                saved = self.hooks.saved_escalations.pop(group.key, None)
                if saved is not None:
                    group.escalation = saved
                    policy = self.config.escalations.get(route.receiver)
                    if policy is not None:
                        group.escalated = [lv.receiver for lv in policy.levels[: saved.levels]]
                self.groups[slot] = group
                self._schedule(slot, group)
                if route.receiver in self.config.escalations:
                    self._escalating.add(slot)
            group.alerts[fingerprint(alert.labels)] = alert

    # -- status, for the API

    def inhibitor(self, now: int) -> Inhibitor:
        """The inhibition rules over the alerts as they are now (build once, ask many)."""
        return Inhibitor(self.config.inhibit_rules, self.alerts.all(), now)

    def muted_by(
        self, labels: Labels, now: int, inhibitor: Inhibitor | None = None
    ) -> tuple[list[str], list[str]]:
        """The silences and the inhibiting alerts that mute an alert: (silenced_by,
        inhibited_by)."""
        silenced = self.silences.muting(labels, now)
        source = (inhibitor or self.inhibitor(now)).inhibited_by(dict(labels))
        return silenced, [source] if source else []

    def receivers_of(self, labels: Labels) -> list[str]:
        return [r.receiver for r in self.config.route.match(dict(labels))]

    def group_by_id(self, wanted: str) -> AggregationGroup | None:
        return next((g for g in self.groups.values() if g.id == wanted), None)

    def acknowledge(self, wanted: str, by: str, comment: str) -> AggregationGroup:
        """Acknowledge a group: its escalation stops and it is not repeated while it lasts.
        KeyError if there is no such group."""
        group = self.group_by_id(wanted)
        if group is None:
            raise KeyError(wanted)
        now = self.clock()
        group.ack = Ack(by, now, comment)
        self.hooks.save_ack(group.key, group.ack)
        self.hooks.record([self._group_event(now, "acknowledged", group, by=by, comment=comment)])
        return group

    # -- flushing

    def _schedule(self, slot: tuple[int, int], group: AggregationGroup) -> None:
        self._sequence += 1
        heapq.heappush(self._due, (group.next_flush_ms, self._sequence, slot))

    def _current(self, entry: tuple[int, int, tuple[int, int]]) -> AggregationGroup | None:
        """The group an entry of the schedule is for, if the entry still holds."""
        at, _, slot = entry
        group = self.groups.get(slot)
        if group is None or group.flushing or group.next_flush_ms != at:
            return None
        return group

    def next_due_ms(self) -> int | None:
        while self._due and self._current(self._due[0]) is None:
            heapq.heappop(self._due)
        due = [self._due[0][0]] if self._due else []
        for slot in list(self._escalating):
            group = self.groups.get(slot)
            if group is None:
                self._escalating.discard(slot)
                continue
            policy = self.config.escalations.get(group.route.receiver)
            if policy is not None and group.ack is None and not group.flushing:
                at = group.escalation.next_due_ms(policy)
                if at is not None:
                    due.append(at)
        return min(due) if due else None

    def _escalate(self, group: AggregationGroup, now: int) -> bool:
        """Bring in the levels whose time has come: they are notified at a flush now. True
        if the group is now due."""
        policy = self.config.escalations.get(group.route.receiver)
        if policy is None or group.ack is not None or group.flushing:
            return False
        if not any(not a.resolved_at(now) for a in group.alerts.values()):
            return False
        brought = group.escalation.due(policy, now)
        if not brought:
            return False
        for receiver in brought:
            if receiver not in group.escalated:
                group.escalated.append(receiver)
            group.forced.add(receiver)
        group.next_flush_ms = now
        self.hooks.save_escalation(group.key, group.escalation)
        self.hooks.record(
            [
                self._group_event(now, "escalated", group, level=group.escalation.levels, to=r)
                for r in brought
            ]
        )
        return True

    def start_due(self, now: int) -> list[asyncio.Task[None]]:
        """Start the flush of every group that is due; the tasks started."""
        started = []
        for slot in list(self._escalating):
            group = self.groups.get(slot)
            if group is not None and self._escalate(group, now):
                self._schedule(slot, group)
        while self._due and self._due[0][0] <= now:
            entry = heapq.heappop(self._due)
            group = self._current(entry)
            if group is None:
                continue
            slot = entry[2]
            group.next_flush_ms = now + group.route.group_interval_ms
            group.flushing = True
            task = asyncio.get_running_loop().create_task(self._flush(slot, group, now))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started.append(task)
        return started

    async def run(self) -> None:
        """Flush groups as they come due, until cancelled."""
        while True:
            self.start_due(self.clock())
            due = self.next_due_ms()
            wait = None if due is None else max(0.0, (due - self.clock()) / 1000)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _flush(self, slot: tuple[int, int], group: AggregationGroup, now: int) -> None:
        try:
            snapshot = dict(group.alerts)
            alerts = sorted(
                (a if a.resolved_at(now) else replace(a, ends_at_ms=0) for a in snapshot.values()),
                key=_alert_order,
            )
            ok = await self._notify(group, alerts, now)
            if ok:
                for fp, alert in snapshot.items():
                    if alert.resolved_at(now) and group.alerts.get(fp) is alert:
                        del group.alerts[fp]
                if not group.alerts and self.groups.get(slot) is group:
                    del self.groups[slot]
                    if group.ack is not None:
                        self.hooks.save_ack(group.key, None)
                    if group.escalation.first_notified_ms:
                        self.hooks.save_escalation(group.key, None)
        except Exception:  # a bug here must not end the dispatcher; the next flush retries
            log.exception("flushing alert group %s failed", group.key)
        finally:
            group.flushing = False
            if self.groups.get(slot) is group:
                self._schedule(slot, group)  # due again at its next flush (or now, if late)
            self._wake.set()

    async def _notify(self, group: AggregationGroup, alerts: list[Alert], now: int) -> bool:
        if not alerts:
            return True
        route = group.route
        inhibitor = self.inhibitor(now)
        alerts = [a for a in alerts if not any(self.muted_by(a.labels, now, inhibitor))]
        if not alerts:
            return True
        intervals = self.config.time_intervals
        muting = [p for name in route.mute_time_intervals for p in intervals.get(name, ())]
        if muting and in_any(muting, now):
            return True
        active = [p for name in route.active_time_intervals for p in intervals.get(name, ())]
        if route.active_time_intervals and not in_any(active, now):
            return True
        timeout_ms = max(route.group_interval_ms, MIN_FLUSH_TIMEOUT_MS)
        # an acknowledged group hears news, but no repeats
        repeat_ms = route.repeat_interval_ms if group.ack is None else 2**62
        jobs: list[Coroutine[Any, Any, bool]] = []
        for receiver in [route.receiver, *group.escalated]:
            hours = self.config.receiver_active.get(receiver)
            if hours and not in_any(hours, now):
                continue  # held: the log has not recorded it, so the news waits
            data = notification_data(
                receiver, alerts, group.labels, self.config.external_url, group.key, now
            )
            forced = receiver in group.forced
            jobs.extend(
                self._integration(i, data, repeat_ms, timeout_ms, forced)
                for i in self.config.integrations.get(receiver, ())
            )
        group.forced.clear()
        results = await asyncio.gather(*jobs)
        policy = self.config.escalations.get(route.receiver)
        if (
            policy is not None
            and not group.escalation.first_notified_ms
            and any(not a.resolved_at(now) for a in alerts)
            and any(
                self.nflog.get(NotificationLog.key(group.key, i.name))
                for i in self.config.integrations.get(route.receiver, ())
            )
        ):
            group.escalation.first_notified_ms = now
            self.hooks.save_escalation(group.key, group.escalation)
        return all(results)

    async def _integration(
        self,
        integration: Integration,
        data: NotificationData,
        repeat_ms: int,
        timeout_ms: int,
        forced: bool = False,
    ) -> bool:
        firing = frozenset(fingerprint(a.labels) for a in data.firing)
        resolved = frozenset(fingerprint(a.labels) for a in data.resolved)
        key = NotificationLog.key(data.group_key, integration.name)
        entry = self.nflog.get(key)
        news = needs_update(
            entry, firing, resolved, integration.send_resolved, repeat_ms, data.now_ms
        )
        if not news and not (forced and firing):
            return True
        sent = data
        if not integration.send_resolved:
            if not firing:  # nothing it wants to hear; logged so the log forgets the group
                self.nflog.log(key, Entry(firing, resolved, data.now_ms))
                return True
            sent = data.with_alerts(data.firing)
        if not await self._send_with_retries(integration, sent, timeout_ms):
            return False
        self.nflog.log(key, Entry(firing, resolved, data.now_ms))
        return True

    def _record_sent(self, integration: Integration, data: NotificationData, error: str) -> None:
        event = "notify_failed" if error else "notified"
        extra: dict[str, Any] = {
            "receiver": integration.receiver,
            "integration": integration.name,
            "status": data.status,
        }
        if error:
            extra["error"] = error
        self.hooks.record(
            [
                self._alert_event(data.now_ms, event, a, group_key=data.group_key, **extra)
                for a in data.alerts
            ]
        )

    async def _send_with_retries(
        self, integration: Integration, data: NotificationData, timeout_ms: int
    ) -> bool:
        """Alertmanager's RetryStage: exponential backoff from 0.5 s (x1.5, +-50% jitter, at
        most 60 s) until the flush's time is up or the error says retrying cannot help."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        delay = 0.5
        while True:
            try:
                await asyncio.wait_for(self.sender(integration, data), deadline - loop.time())
            except NotifyError as err:
                error = str(err)
                retry = err.retry
            except TimeoutError:
                error, retry = "timed out", False
            else:
                self.on_sent(Sent(integration, data))
                self._record_sent(integration, data, "")
                return True
            wait = delay * random.uniform(0.5, 1.5)
            if not retry or loop.time() + wait >= deadline:
                log.warning("notify %s failed: %s", integration.name, error)
                self.on_sent(Sent(integration, data, error))
                self._record_sent(integration, data, error)
                return False
            await asyncio.sleep(wait)
            delay = min(delay * 1.5, 60.0)


def _alert_before(a: Alert, b: Alert) -> int:
    """Alertmanager's AlertSlice order: by `job`, then `instance` (an alert with the label
    before one without), then by LabelSet.Before."""
    la, lb = dict(a.labels), dict(b.labels)
    for name in ("job", "instance"):
        if name not in la and name not in lb:
            continue
        if name not in la:
            return 1
        if name not in lb:
            return -1
        if la[name] != lb[name]:
            return -1 if la[name] < lb[name] else 1
    return _label_set_compare(la, lb)


def _label_set_compare(a: dict[str, str], b: dict[str, str]) -> int:
    if len(a) != len(b):
        return -1 if len(a) < len(b) else 1
    for name in sorted([*a, *b]):
        if name not in a:
            return -1
        if name not in b:
            return 1
        if a[name] != b[name]:
            return -1 if a[name] < b[name] else 1
    return 0


_alert_order = functools.cmp_to_key(_alert_before)


def _route_index(root: Route) -> dict[int, int]:
    index: dict[int, int] = {}

    def walk(route: Route) -> None:
        index[id(route)] = len(index)
        for child in route.routes:
            walk(child)

    walk(root)
    return index
