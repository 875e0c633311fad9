"""The dispatcher on a fake clock: grouping, the three timers, the notification log, resolved
alerts, silences, inhibition, time intervals and failing receivers, as Alertmanager behaves."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest

from watchkeeper.alerting.alertstore import AlertStore
from watchkeeper.alerting.amconfig import parse_alertmanager_text
from watchkeeper.alerting.dispatch import DispatchConfig, Dispatcher
from watchkeeper.alerting.escalation import build_policies
from watchkeeper.alerting.nflog import NotificationLog
from watchkeeper.alerting.notification import Integration, NotificationData, NotifyError
from watchkeeper.alerting.silences import Silence, Silences
from watchkeeper.model import Matcher, MatchOp
from watchkeeper.model.alerts import Alert


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in a fresh event loop (the dispatcher's tasks need one)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


S = 1000
MIN = 60 * S
T0 = 1_800_000_000_000  # a Wednesday, 2027-01-15T08:00:00Z


CONFIG = """
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - matchers: ['severity="page"']
      receiver: pager
      group_by: [alertname, cluster]
    - matchers: ['team="night"']
      receiver: team
      mute_time_intervals: [office-hours]
    - matchers: ['team="day"']
      receiver: team
      active_time_intervals: [office-hours]
receivers:
  - name: team
    webhook_configs: [{url: 'http://team.invalid/'}]
  - name: pager
    webhook_configs:
      - url: 'http://pager.invalid/'
        send_resolved: false
inhibit_rules:
  - source_matchers: ['severity="page"']
    target_matchers: ['severity="warn"']
    equal: [cluster]
time_intervals:
  - name: office-hours
    time_intervals:
      - times: [{start_time: '07:00', end_time: '17:00'}]
        weekdays: ['monday:friday']
"""


@dataclass
class Recorder:
    sent: list[tuple[str, NotificationData]] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)

    async def __call__(self, integration: Integration, data: NotificationData) -> None:
        if integration.receiver in self.failing:
            raise NotifyError("down", retry=False)
        self.sent.append((integration.receiver, data))

    def take(self) -> list[tuple[str, str, list[tuple[str, str]]]]:
        """What was sent since the last take: receiver, group key, (alertname+cluster,
        status) of each alert."""
        out = [
            (
                receiver,
                data.group_key,
                [
                    (
                        dict(a.labels)["alertname"] + dict(a.labels).get("cluster", ""),
                        data.alert_status(a),
                    )
                    for a in data.alerts
                ],
            )
            for receiver, data in self.sent
        ]
        self.sent.clear()
        return out


class Harness:
    def __init__(self, config: str = CONFIG) -> None:
        self.now = T0
        self.sender = Recorder()
        am = parse_alertmanager_text(config)
        self.silences = Silences()
        self.dispatcher = Dispatcher(
            DispatchConfig(
                am.route, am.integrations, am.inhibit_rules, am.periods, "http://wk.example"
            ),
            AlertStore(),
            self.silences,
            NotificationLog(),
            self.sender,
            lambda: self.now,
        )

    def fire(self, name: str, ends_in: int = 10 * MIN, **labels: str) -> None:
        self.post(name, self.now, self.now + ends_in, **labels)

    def resolve(self, name: str, **labels: str) -> None:
        self.post(name, self.now - 10 * MIN, self.now, **labels)

    def post(self, name: str, starts: int, ends: int, **labels: str) -> None:
        alert = Alert(
            labels=tuple(sorted({"alertname": name, **labels}.items())),
            starts_at_ms=starts,
            ends_at_ms=ends,
            updated_at_ms=self.now,
        )
        self.dispatcher.put([alert])

    async def run(self, offset_ms: int) -> None:
        """Move the clock to T0 + offset and run the flushes due."""
        self.now = T0 + offset_ms
        await asyncio.gather(*self.dispatcher.start_due(self.now))

    async def at(self, offset_ms: int) -> list[tuple[str, str, list[tuple[str, str]]]]:
        """Run to T0 + offset and return what was sent."""
        await self.run(offset_ms)
        return self.sender.take()


@in_loop
async def test_group_wait_then_group_interval_then_repeat_interval() -> None:
    h = Harness()
    h.fire("Disk", ends_in=5 * 3_600_000)
    assert await h.at(29 * S) == []
    assert await h.at(30 * S) == [("team", '{}:{alertname="Disk"}', [("Disk", "firing")])]
    # a second alert of the group waits for the group interval, then both go out together
    h.fire("Disk", ends_in=5 * 3_600_000, instance="b")
    assert await h.at(5 * MIN) == []
    sent = await h.at(30 * S + 5 * MIN)
    assert [s[2] for s in sent] == [[("Disk", "firing"), ("Disk", "firing")]]
    # nothing new: quiet until more than repeat_interval has passed since the last
    # notification (at 5m30s), so the repeat goes with the flush after 4h05m30s
    for minutes in range(10, 4 * 60 + 6, 5):
        assert await h.at(30 * S + minutes * MIN) == [], minutes
    sent = await h.at(30 * S + (4 * 60 + 10) * MIN)
    assert len(sent) == 1


@in_loop
async def test_an_old_alert_flushes_at_once() -> None:
    h = Harness()
    h.post("Old", T0 - 10 * MIN, T0 + 10 * MIN)
    assert await h.at(0) == [("team", '{}:{alertname="Old"}', [("Old", "firing")])]


@in_loop
async def test_resolved_is_sent_where_wanted_and_the_group_goes() -> None:
    h = Harness()
    h.fire("Down", cluster="eu", severity="page")
    h.fire("Down", cluster="eu", severity="warn")
    sent = await h.at(30 * S)
    # the page inhibits the warning of its cluster: only the pager hears
    assert sent == [
        ("pager", '{}/{severity="page"}:{alertname="Down", cluster="eu"}', [("Downeu", "firing")])
    ]
    h.resolve("Down", cluster="eu", severity="page")
    h.fire("Down", cluster="eu", severity="warn")
    sent = await h.at(30 * S + 5 * MIN)
    # the pager does not send resolved (its log is updated, nothing is posted); the team's
    # warning is no longer inhibited and goes out
    assert sent == [("team", '{}:{alertname="Down"}', [("Downeu", "firing")])]
    assert [g.key for g in h.dispatcher.groups.values()] == ['{}:{alertname="Down"}']
    h.resolve("Down", cluster="eu", severity="warn")
    sent = await h.at(30 * S + 10 * MIN)
    assert sent == [("team", '{}:{alertname="Down"}', [("Downeu", "resolved")])]
    assert h.dispatcher.groups == {}


@in_loop
async def test_alerts_that_fire_and_resolve_unseen_are_not_sent() -> None:
    h = Harness()
    h.fire("Blip")
    h.resolve("Blip")
    assert await h.at(30 * S) == []
    assert h.dispatcher.groups == {}


@in_loop
async def test_a_silence_mutes_and_its_expiry_unmutes() -> None:
    h = Harness()
    silence_id = h.silences.set(
        Silence("", (Matcher("alertname", MatchOp.EQUAL, "Disk"),), T0, T0 + 3_600_000, "me", "x"),
        T0,
    )
    h.fire("Disk", ends_in=3 * 3_600_000)
    h.fire("Cpu", ends_in=3 * 3_600_000)
    assert [s[1] for s in await h.at(30 * S)] == ['{}:{alertname="Cpu"}']
    silenced, inhibited = h.dispatcher.muted_by((("alertname", "Disk"),), h.now)
    assert silenced == [silence_id] and inhibited == []
    h.now = T0 + MIN
    h.silences.expire(silence_id, h.now)
    assert [s[1] for s in await h.at(30 * S + 5 * MIN)] == ['{}:{alertname="Disk"}']


@pytest.mark.parametrize(
    ("offset_h", "team", "sent"),
    [
        (0, "night", False),  # 08:00 on a Wednesday: inside office hours, muted
        (10, "night", True),  # 18:00: outside, sent
        (0, "day", True),  # active only in office hours: sent
        (10, "day", False),
    ],
)
@in_loop
async def test_time_intervals_mute_and_activate(offset_h: int, team: str, sent: bool) -> None:
    h = Harness()
    h.now = T0 + offset_h * 3_600_000
    h.fire("Job", team=team)
    assert bool(await h.at(offset_h * 3_600_000 + 30 * S)) is sent


@in_loop
async def test_a_failing_receiver_delays_only_itself_and_is_retried_next_flush() -> None:
    h = Harness()
    h.sender.failing.add("pager")
    h.fire("Down", cluster="eu", severity="page")
    h.fire("Other")
    sent = await h.at(30 * S)
    assert [s[0] for s in sent] == ["team"]
    h.sender.failing.clear()
    sent = await h.at(30 * S + 5 * MIN)
    assert [s[0] for s in sent] == ["pager"]  # the log had nothing for it: sent now


@in_loop
async def test_notification_data_is_alertmanagers() -> None:
    h = Harness()
    h.fire("Disk", instance="b", job="node", cluster="eu", severity="warn")
    h.fire("Disk", instance="a", job="node", cluster="us", severity="warn")
    h.fire("Disk", cluster="us", severity="warn")
    await h.run(30 * S)
    ((receiver, data),) = h.sender.sent
    assert receiver == "team"
    assert data.status == "firing" and data.external_url == "http://wk.example"
    assert data.group_labels == (("alertname", "Disk"),)
    assert data.common_labels == (("alertname", "Disk"), ("severity", "warn"))
    # job, then instance, with the alert lacking them last
    assert [dict(a.labels).get("instance") for a in data.alerts] == ["a", "b", None]
    assert all(a.ends_at_ms == 0 for a in data.alerts)  # firing alerts carry no end


ESCALATING = """
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 1m
  repeat_interval: 4h
receivers:
  - name: team
    webhook_configs: [{url: 'http://team.invalid/'}]
  - name: primary
    webhook_configs: [{url: 'http://primary.invalid/'}]
  - name: secondary
    webhook_configs: [{url: 'http://secondary.invalid/'}]
"""


def escalating(repeat: str = "") -> Harness:
    h = Harness(ESCALATING)
    policy: dict[str, Any] = {
        "receiver": "team",
        "levels": [
            {"after": "10m", "receiver": "primary"},
            {"after": "20m", "receiver": "secondary"},
        ],
    }
    if repeat:
        policy["repeat_interval"] = repeat
    am = parse_alertmanager_text(ESCALATING)
    h.dispatcher.config.escalations = build_policies(am, [policy], {}).escalations
    return h


async def _minutes(h: Harness, last: int) -> list[tuple[int, str]]:
    """Run minute by minute (at :30 past, when the group flushes) up to `last`; who heard."""
    heard = []
    for minute in range(0, last + 1):
        for receiver, _, alerts in await h.at(minute * MIN + 30 * S):
            heard.append((minute, f"{receiver} {alerts[0][1]}"))
    return heard


@in_loop
async def test_an_unacknowledged_group_escalates_level_by_level() -> None:
    h = escalating()
    h.fire("Down", ends_in=3_600_000)
    heard = await _minutes(h, 40)
    assert heard == [(0, "team firing"), (10, "primary firing"), (20, "secondary firing")]
    # the levels brought in hear the resolution, as the group's own receiver does
    h.resolve("Down")
    assert sorted(r for r, _, _ in await h.at(41 * MIN + 30 * S)) == [
        "primary",
        "secondary",
        "team",
    ]


@in_loop
async def test_an_acknowledged_group_does_not_escalate_nor_repeat() -> None:
    h = escalating(repeat="15m")
    h.fire("Down", ends_in=6 * 3_600_000)
    assert await _minutes(h, 12) == [(0, "team firing"), (10, "primary firing")]
    (group,) = h.dispatcher.groups.values()
    h.dispatcher.acknowledge(group.id, "alice", "on it")
    assert group.ack is not None and group.ack.by == "alice"
    heard = []
    for minute in range(13, 5 * 60):
        heard += await h.at(minute * MIN + 30 * S)
    assert heard == []  # no secondary, no repeat of the last level, no 4h repeat


@in_loop
async def test_the_last_level_is_paged_again_until_acknowledged() -> None:
    h = escalating(repeat="15m")
    h.fire("Down", ends_in=3_600_000)
    heard = await _minutes(h, 50)
    assert heard == [
        (0, "team firing"),
        (10, "primary firing"),
        (20, "secondary firing"),
        (35, "secondary firing"),
        (50, "secondary firing"),
    ]


@in_loop
async def test_receiver_active_hours_hold_the_news_until_they_begin() -> None:
    h = Harness(ESCALATING)
    am = parse_alertmanager_text(
        ESCALATING
        + "time_intervals:\n  - name: later\n    time_intervals:\n"
        + "      - times: [{start_time: '08:30', end_time: '18:00'}]\n"
    )
    h.dispatcher.config.receiver_active = build_policies(
        am, [], {"team": ["later"]}
    ).receiver_active
    h.fire("Down", ends_in=3_600_000)  # T0 is 08:00 UTC
    heard = await _minutes(h, 35)
    assert heard == [(30, "team firing")]  # held from 08:00:30 until 08:30:30
