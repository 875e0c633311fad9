"""The built-in Alertmanager: one per process, with state kept per tenant.

Alerts arrive from the rule evaluator and from `POST /api/v2/alerts`; each tenant has its own
alerts, silences, notification log and dispatcher, under the Alertmanager configuration of
the tenant (alerting.tenants) or the one shared by the others.
Silences and the notification log are written to the state store before a change is
acknowledged and read back at start, so a restart neither forgets a silence nor repeats a
notification. A reload builds new dispatchers from the new configuration and routes the alerts
known so far through them (the log keeps them from notifying twice), as Alertmanager does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.alerting.alertstore import AlertStore
from watchkeeper.alerting.amconfig import AlertmanagerConfig
from watchkeeper.alerting.dispatch import DispatchConfig, Dispatcher, DispatchHooks, Sent
from watchkeeper.alerting.escalation import NO_POLICIES, Ack, Escalation, Policies
from watchkeeper.alerting.history import History
from watchkeeper.alerting.nflog import Entry, NotificationLog
from watchkeeper.alerting.notification import Sender
from watchkeeper.alerting.silences import Silence, Silences
from watchkeeper.model.alerts import Alert, fingerprint_text
from watchkeeper.store import StateStore
from watchkeeper.store.statedb import WriteBehind

log = logging.getLogger(__name__)

SILENCES = "silences"
NFLOG = "nflog"
ACKS = "acks"
ALERTS = "alerts"
ESCALATIONS = "escalations"
# how often resolved alerts, expired silences and old log entries are dropped (Alertmanager
# collects every 30 minutes; sooner keeps memory flat under churn)
MAINTENANCE_INTERVAL_S = 60.0


@dataclass(frozen=True)
class AlertmanagerSetup:
    """An Alertmanager configuration and watchkeeper's policies over its receivers."""

    config: AlertmanagerConfig
    policies: Policies = NO_POLICIES


@dataclass(frozen=True)
class AlertmanagerSetups:
    """The setup of every tenant: its own where it has one, else the default."""

    default: AlertmanagerSetup
    tenants: Mapping[str, AlertmanagerSetup] = field(default_factory=dict)

    def of(self, tenant: str) -> AlertmanagerSetup:
        return self.tenants.get(tenant, self.default)


@dataclass
class TenantAlerting:
    alerts: AlertStore
    silences: Silences
    nflog: NotificationLog
    dispatcher: Dispatcher
    task: asyncio.Task[None] | None = None


class AlertingService:
    def __init__(
        self,
        setups: AlertmanagerSetups | AlertmanagerConfig,
        sender: Sender,
        state: StateStore | None,
        clock: Callable[[], int],
        external_url: str = "",
        retention_ms: int = 120 * 3_600_000,
        on_sent: Callable[[str, Sent], None] | None = None,
        history_retention_ms: int = 30 * 86_400_000,
    ) -> None:
        """`setups`: one configuration for all tenants, or the setups per tenant."""
        if isinstance(setups, AlertmanagerConfig):
            setups = AlertmanagerSetups(AlertmanagerSetup(setups))
        self.setups = setups
        self.history_retention_ms = history_retention_ms
        self.writer: WriteBehind | None = None
        self.history = History(None, None)
        self.sender = sender
        self.state = state
        self.clock = clock
        self.external_url = external_url
        self.retention_ms = retention_ms
        self.on_sent = on_sent or (lambda tenant, sent: None)
        self.tenants: dict[str, TenantAlerting] = {}
        # where received alerts also go (external Alertmanagers), if anywhere
        self.forward: Callable[[Sequence[Alert]], None] | None = None
        self._running = False
        self._maintenance: asyncio.Task[None] | None = None
        self._saved: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        if state is not None:
            self.attach_state(state)

    # -- lifecycle

    def attach_state(self, state: StateStore) -> None:
        """Use a state store (opened with the data directory): what it holds is loaded."""
        self.state = state
        self.writer = WriteBehind(state)
        self.history = History(state, self.writer)
        kinds = (SILENCES, NFLOG, ACKS, ESCALATIONS, ALERTS)
        self._saved = {kind: state.load(kind) for kind in kinds}

    def _take_saved(self, kind: str, tenant: str) -> dict[str, dict[str, Any]]:
        return self._saved.get(kind, {}).pop(tenant, {})

    async def start(self) -> None:
        self._running = True
        for tenant in {t for saved in self._saved.values() for t in saved}:
            self.tenant(tenant)
        for state in self.tenants.values():
            self._start_dispatcher(state)
        self._maintenance = asyncio.get_running_loop().create_task(self._maintain())

    async def stop(self) -> None:
        self._running = False
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        for state in self.tenants.values():
            await self._stop_dispatcher(state)
        if self.writer is not None:
            await asyncio.to_thread(self.writer.stop)

    def config_of(self, tenant: str) -> AlertmanagerConfig:
        """The Alertmanager configuration the tenant's alerts follow."""
        return self.setups.of(tenant).config

    async def reload(self, setups: AlertmanagerSetups | AlertmanagerConfig) -> None:
        if isinstance(setups, AlertmanagerConfig):
            setups = AlertmanagerSetups(AlertmanagerSetup(setups))
        self.setups = setups
        for name, state in self.tenants.items():
            await self._stop_dispatcher(state)
            state.alerts.resolve_timeout_ms = self.config_of(name).resolve_timeout_ms
            hooks = state.dispatcher.hooks
            for group in state.dispatcher.groups.values():  # kept across the rebuild
                if group.ack is not None:
                    hooks.saved_acks[group.key] = group.ack
                if group.escalation.first_notified_ms:
                    hooks.saved_escalations[group.key] = group.escalation
            state.dispatcher = self._dispatcher(
                name, state.alerts, state.silences, state.nflog, hooks
            )
            state.dispatcher.put(state.alerts.all())
            if self._running:
                self._start_dispatcher(state)

    # -- per tenant

    def tenant(self, name: str) -> TenantAlerting:
        found = self.tenants.get(name)
        if found is not None:
            return found
        alerts = AlertStore(
            self.config_of(name).resolve_timeout_ms,
            persist=self._persist_alerts(name),
            forget=self._forget_alerts(name),
        )
        silences = Silences(
            self.retention_ms,
            persist=self._persist_silence(name),
            forget=self._forget(SILENCES, name),
        )
        silences.load([Silence.from_json(raw) for raw in self._take_saved(SILENCES, name).values()])
        nflog = NotificationLog(
            self.retention_ms, persist=self._persist_entry(name), forget=self._forget(NFLOG, name)
        )
        nflog.load(
            {key: Entry.from_json(raw) for key, raw in self._take_saved(NFLOG, name).items()}
        )
        hooks = DispatchHooks(
            record=self.history.record,
            save_ack=self._saver(ACKS, name),
            save_escalation=self._saver(ESCALATIONS, name, behind=True),
            saved_acks={k: Ack.from_json(v) for k, v in self._take_saved(ACKS, name).items()},
            saved_escalations={
                k: Escalation.from_json(v) for k, v in self._take_saved(ESCALATIONS, name).items()
            },
        )
        state = TenantAlerting(
            alerts, silences, nflog, self._dispatcher(name, alerts, silences, nflog, hooks)
        )
        self.tenants[name] = state
        saved_alerts = [Alert.from_json(raw) for raw in self._take_saved(ALERTS, name).values()]
        if saved_alerts:  # groups come back, and the notification log keeps them quiet
            state.dispatcher.put(saved_alerts, restoring=True)
        if self._running:
            self._start_dispatcher(state)
        return state

    def receive(self, tenant: str, alerts: Sequence[Alert]) -> None:
        """Alerts posted by a client or sent by the rule evaluator: missing times filled in as
        Alertmanager fills them."""
        state = self.tenant(tenant)
        now = self.clock()
        state.dispatcher.put([state.alerts.receive(a, now) for a in alerts])
        if self.forward is not None:
            self.forward(alerts)

    # -- internals

    def _dispatcher(
        self,
        tenant: str,
        alerts: AlertStore,
        silences: Silences,
        nflog: NotificationLog,
        hooks: DispatchHooks,
    ) -> Dispatcher:
        setup = self.setups.of(tenant)
        config = DispatchConfig(
            route=setup.config.route,
            integrations=setup.config.integrations,
            inhibit_rules=setup.config.inhibit_rules,
            time_intervals=setup.config.periods,
            external_url=self.external_url,
            escalations=setup.policies.escalations,
            receiver_active=setup.policies.receiver_active,
        )
        on_sent = self.on_sent
        return Dispatcher(
            config,
            alerts,
            silences,
            nflog,
            self.sender,
            self.clock,
            lambda sent: on_sent(tenant, sent),
            hooks,
            tenant,
        )

    def _start_dispatcher(self, state: TenantAlerting) -> None:
        state.task = asyncio.get_running_loop().create_task(state.dispatcher.run())

    async def _stop_dispatcher(self, state: TenantAlerting) -> None:
        if state.task is not None:
            state.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await state.task
            state.task = None
        await state.dispatcher.stop()

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)
            now = self.clock()
            for state in self.tenants.values():
                try:
                    state.alerts.gc(now)
                    state.silences.gc(now)
                    state.nflog.gc(now)
                except Exception:  # keep collecting the others; the next round retries
                    log.exception("alerting maintenance failed")
            if self.state is not None:
                await asyncio.to_thread(
                    self.state.drop_history_before, now - self.history_retention_ms
                )

    def _saver(self, kind: str, tenant: str, behind: bool = False) -> Callable[[str, Any], None]:
        """Save (or, given None, remove) a tenant's document of a kind under a key: at once
        (what a user asked for, such as an acknowledgement), or written behind."""

        def save(key: str, value: Any) -> None:
            state = self.writer if behind else self.state
            if state is None:
                return
            if value is None:
                state.delete(kind, tenant, key)
            else:
                state.put(kind, tenant, key, value.to_json())

        return save

    async def sync(self) -> None:
        """Wait until what was written behind so far is on disk (before acknowledging alerts
        posted to the API: nothing acknowledged is lost)."""
        if self.writer is not None:
            await asyncio.to_thread(self.writer.flush)

    def _persist_alerts(self, tenant: str) -> Callable[[list[Alert]], None]:
        writer = self.writer
        if writer is None:
            return lambda alerts: None

        def persist(alerts: list[Alert]) -> None:
            for alert in alerts:
                writer.put(ALERTS, tenant, fingerprint_text(alert.labels), alert.to_json())

        return persist

    def _forget_alerts(self, tenant: str) -> Callable[[list[Alert]], None]:
        writer = self.writer
        if writer is None:
            return lambda alerts: None

        def forget(alerts: list[Alert]) -> None:
            for alert in alerts:
                writer.delete(ALERTS, tenant, fingerprint_text(alert.labels))

        return forget

    def _persist_silence(self, tenant: str) -> Callable[[Silence], None]:
        state = self.state
        if state is None:
            return lambda silence: None
        return lambda silence: state.put(SILENCES, tenant, silence.id, silence.to_json())

    def _persist_entry(self, tenant: str) -> Callable[[str, Entry], None]:
        # written behind: a notification log entry lost to a crash costs at most a repeated
        # notification, and waiting for a sync per notification would slow every flush
        writer = self.writer
        if writer is None:
            return lambda key, entry: None
        return lambda key, entry: writer.put(NFLOG, tenant, key, entry.to_json())

    def _forget(self, kind: str, tenant: str) -> Callable[[str], None]:
        writer = self.writer
        if writer is None:
            return lambda key: None
        return lambda key: writer.delete(kind, tenant, key)
