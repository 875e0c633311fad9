"""The built-in Alertmanager: one per process, with state kept per tenant.

Alerts arrive from the rule evaluator and from `POST /api/v2/alerts`; each tenant has its own
alerts, silences, notification log and dispatcher, all under one Alertmanager configuration.
Silences and the notification log are written to the state store before a change is
acknowledged and read back at start, so a restart neither forgets a silence nor repeats a
notification. A reload builds new dispatchers from the new configuration and routes the alerts
known so far through them (the log keeps them from notifying twice), as Alertmanager does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from watchkeeper.alerting.alertstore import AlertStore
from watchkeeper.alerting.amconfig import AlertmanagerConfig
from watchkeeper.alerting.dispatch import DispatchConfig, Dispatcher, Sent
from watchkeeper.alerting.nflog import Entry, NotificationLog
from watchkeeper.alerting.notification import Sender
from watchkeeper.alerting.silences import Silence, Silences
from watchkeeper.model.alerts import Alert
from watchkeeper.store.statedb import StateDB

log = logging.getLogger(__name__)

SILENCES = "silences"
NFLOG = "nflog"
# how often resolved alerts, expired silences and old log entries are dropped (Alertmanager
# collects every 30 minutes; sooner keeps memory flat under churn)
MAINTENANCE_INTERVAL_S = 60.0


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
        config: AlertmanagerConfig,
        sender: Sender,
        state: StateDB | None,
        clock: Callable[[], int],
        external_url: str = "",
        retention_ms: int = 120 * 3_600_000,
        on_sent: Callable[[str, Sent], None] | None = None,
    ) -> None:
        self.config = config
        self.sender = sender
        self.state = state
        self.clock = clock
        self.external_url = external_url
        self.retention_ms = retention_ms
        self.on_sent = on_sent or (lambda tenant, sent: None)
        self.tenants: dict[str, TenantAlerting] = {}
        self._running = False
        self._maintenance: asyncio.Task[None] | None = None
        self._saved_silences = state.load(SILENCES) if state else {}
        self._saved_nflog = state.load(NFLOG) if state else {}

    # -- lifecycle

    def attach_state(self, state: StateDB) -> None:
        """Use a state store (opened with the data directory): what it holds is loaded."""
        self.state = state
        self._saved_silences = state.load(SILENCES)
        self._saved_nflog = state.load(NFLOG)

    async def start(self) -> None:
        self._running = True
        for tenant in set(self._saved_silences) | set(self._saved_nflog):
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

    async def reload(self, config: AlertmanagerConfig) -> None:
        self.config = config
        for name, state in self.tenants.items():
            await self._stop_dispatcher(state)
            state.alerts.resolve_timeout_ms = config.resolve_timeout_ms
            state.dispatcher = self._dispatcher(name, state.alerts, state.silences, state.nflog)
            state.dispatcher.put(state.alerts.all())
            if self._running:
                self._start_dispatcher(state)

    # -- per tenant

    def tenant(self, name: str) -> TenantAlerting:
        found = self.tenants.get(name)
        if found is not None:
            return found
        alerts = AlertStore(self.config.resolve_timeout_ms)
        silences = Silences(
            self.retention_ms,
            persist=self._persist_silence(name),
            forget=self._forget(SILENCES, name),
        )
        silences.load(
            [Silence.from_json(raw) for raw in self._saved_silences.pop(name, {}).values()]
        )
        nflog = NotificationLog(
            self.retention_ms, persist=self._persist_entry(name), forget=self._forget(NFLOG, name)
        )
        nflog.load(
            {key: Entry.from_json(raw) for key, raw in self._saved_nflog.pop(name, {}).items()}
        )
        state = TenantAlerting(
            alerts, silences, nflog, self._dispatcher(name, alerts, silences, nflog)
        )
        self.tenants[name] = state
        if self._running:
            self._start_dispatcher(state)
        return state

    def receive(self, tenant: str, alerts: Sequence[Alert]) -> None:
        """Alerts posted by a client or sent by the rule evaluator: missing times filled in as
        Alertmanager fills them."""
        state = self.tenant(tenant)
        now = self.clock()
        state.dispatcher.put([state.alerts.receive(a, now) for a in alerts])

    # -- internals

    def _dispatcher(
        self, tenant: str, alerts: AlertStore, silences: Silences, nflog: NotificationLog
    ) -> Dispatcher:
        config = DispatchConfig(
            route=self.config.route,
            integrations=self.config.integrations,
            inhibit_rules=self.config.inhibit_rules,
            time_intervals=self.config.periods,
            external_url=self.external_url,
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

    def _persist_silence(self, tenant: str) -> Callable[[Silence], None]:
        state = self.state
        if state is None:
            return lambda silence: None
        return lambda silence: state.put(SILENCES, tenant, silence.id, silence.to_json())

    def _persist_entry(self, tenant: str) -> Callable[[str, Entry], None]:
        state = self.state
        if state is None:
            return lambda key, entry: None
        return lambda key, entry: state.put(NFLOG, tenant, key, entry.to_json())

    def _forget(self, kind: str, tenant: str) -> Callable[[str], None]:
        state = self.state
        if state is None:
            return lambda key: None
        return lambda key: state.delete(kind, tenant, key)
