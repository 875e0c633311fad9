"""The composition root: builds the store, decoders, HTTP app and background loops from one
Config, starts them in order and stops them in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from watchkeeper import __version__
from watchkeeper.alerting import (
    AlertingService,
    AlertmanagerSetup,
    AlertmanagerSetups,
    RoutingError,
    load_alertmanager_config,
    parse_alertmanager_text,
)
from watchkeeper.alerting.dispatch import Sent
from watchkeeper.alerting.escalation import build_policies
from watchkeeper.api import ApiContext, Instruments, create_api
from watchkeeper.api.auth import Authenticator
from watchkeeper.api.otlp_grpc import OtlpGrpcServer
from watchkeeper.config import AlertingSection, Config, ConfigError, TenantAlertingSection
from watchkeeper.ingest import (
    DeltaStreams,
    OtlpLimits,
    OtlpMetricsDecoder,
    RemoteWriteDecoder,
    RemoteWriteLimits,
)
from watchkeeper.ingest.scrape import ScrapeLimits, ScrapeManager
from watchkeeper.model import METRIC_NAME, SeriesBatch, labels_from_dict
from watchkeeper.model.alerts import Alert
from watchkeeper.notify import Notifiers
from watchkeeper.notify.forward import Forwarder
from watchkeeper.promql import Engine, EngineOptions, QueryGate
from watchkeeper.rules import (
    RestoreOptions,
    RuleFileError,
    RuleManager,
    RulesOptions,
    TenantRules,
)
from watchkeeper.rules.manager import load_rule_files
from watchkeeper.store import AuditLog, MetricsDB, StorageOptions
from watchkeeper.store.statedb import StateDB

log = logging.getLogger(__name__)


class DataDirLock:
    """An exclusive lock on the data directory, so two servers never share one."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"data directory {self.path.parent} is in use by another watchkeeper process"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def check_security(config: Config) -> None:
    if not config.auth.tokens and not config.binds_loopback_only():
        raise ConfigError(
            f"listen: {config.listen} is not a loopback address and auth.tokens is empty; "
            "configure API tokens (watchkeeper token create) or listen on 127.0.0.1"
        )


def _check_free(listen: str, key: str) -> None:
    """Refuse to start, with a clean message, when `listen` is taken: the gRPC server binds it
    only once the HTTP server is starting, where a failure is a traceback."""
    host, _, port = listen.rpartition(":")
    if not listen or port == "0":
        return
    try:
        family = socket.getaddrinfo(host.strip("[]"), int(port))[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host.strip("[]"), int(port)))
    except OSError as err:
        raise ConfigError(f"{key}: cannot listen on {listen}: {err.strerror or err}") from None


class Watchkeeper:
    def __init__(self, config: Config, reload_config: Callable[[], Config] | None = None) -> None:
        """`reload_config` reads the configuration again (SIGHUP, POST /-/reload); without
        one, a reload applies the configuration the server started with."""
        check_security(config)
        self.config = config
        self._reload_config = reload_config or (lambda: config)
        self._reload_lock = asyncio.Lock()
        self.registry = CollectorRegistry()
        self.instruments = Instruments(self.registry)
        storage = config.storage
        self.lock = DataDirLock(config.data_dir)
        self.store = MetricsDB(
            config.data_dir / "metrics",
            StorageOptions(
                retention_ms=storage.retention,
                block_duration_ms=storage.block_duration,
                max_block_duration_ms=storage.max_block_duration,
                out_of_order_window_ms=storage.out_of_order_time_window,
                wal_segment_bytes=storage.wal_segment_bytes,
                max_series_per_tenant=config.limits.max_series_per_tenant,
                read_cache_bytes=storage.read_cache_bytes,
                recent_samples_per_series=storage.recent_samples_per_series,
                recent_samples_bytes=storage.recent_samples_bytes,
                max_exemplars=storage.max_exemplars,
            ),
            observe_fsync=self.instruments.wal_fsync.observe,
        )
        limits = config.limits
        self.decoder = RemoteWriteDecoder(
            RemoteWriteLimits(
                max_decompressed_body_bytes=limits.max_decompressed_body_bytes,
                max_samples_per_request=limits.max_samples_per_request,
                max_labels_per_series=limits.max_labels_per_series,
                max_label_name_length=limits.max_label_name_length,
                max_label_value_length=limits.max_label_value_length,
                name_validation=config.metric_name_validation_scheme,
            ),
            series_cache_size=config.ingest.series_cache_size,
        )
        self.otlp = OtlpMetricsDecoder(
            OtlpLimits(
                max_samples_per_request=limits.max_samples_per_request,
                max_labels_per_series=limits.max_labels_per_series,
                max_label_name_length=limits.max_label_name_length,
                max_label_value_length=limits.max_label_value_length,
                exponential_histogram_max_scale=config.otlp.exponential_histogram_max_scale,
                native_exponential_histograms=config.otlp.exponential_histograms == "native",
                series_cache_size=config.ingest.series_cache_size,
                target_info_interval_ms=config.query.lookback_delta // 2,
            ),
            DeltaStreams(config.otlp.max_delta_streams, config.otlp.delta_stream_idle),
        )
        query = config.query
        self.engine = Engine(
            EngineOptions(
                lookback_delta_ms=query.lookback_delta,
                timeout_s=query.timeout / 1000,
                max_samples=query.max_samples,
                max_series_per_selector=query.max_series_per_selector,
                default_subquery_step_ms=query.default_subquery_step,
                batch_samples=query.batch_samples,
            )
        )
        self.scrape = ScrapeManager(
            self.store,
            config.scrape.tenant,
            # a scrape is held to what a remote_write request is held to
            ScrapeLimits(
                body_size_limit=limits.max_decompressed_body_bytes,
                sample_limit=limits.max_samples_per_request,
                label_limit=limits.max_labels_per_series,
                label_name_length_limit=limits.max_label_name_length,
                label_value_length_limit=limits.max_label_value_length,
            ),
            user_agent=f"watchkeeper/{__version__}",
            workers=config.scrape.workers,
        )

        def rule_manager(tenant: str) -> RuleManager:
            rules = config.rules
            return RuleManager(
                self.engine,
                self.store,
                RulesOptions(
                    evaluation_interval_ms=rules.evaluation_interval,
                    tenant=tenant,
                    external_labels=tuple(sorted(rules.external_labels.items())),
                    external_url=rules.external_url,
                    name_validation=config.metric_name_validation_scheme,
                    restore=RestoreOptions(rules.for_outage_tolerance, rules.for_grace_period),
                    resend_delay_ms=config.alerting.resend_delay,
                    workers=rules.workers,
                    evaluate_on_arrival=rules.evaluate_on_arrival,
                    lookback_delta_ms=config.query.lookback_delta,
                ),
                notify=self._alerts_from_rules,
                count_arrival_evaluations=self.instruments.rule_arrival_evaluations.inc,
            )

        self.rules = TenantRules(rule_manager)
        self.notifiers = Notifiers()
        self.state: StateDB | None = None
        self.alerting = AlertingService(
            _alertmanager_configs(config),
            self.notifiers,
            None,  # the state store opens with the data directory (open())
            clock=lambda: int(time.time() * 1000),
            external_url=config.alerting.external_url
            or config.rules.external_url
            or f"http://{config.listen}",
            retention_ms=config.alerting.data_retention,
            history_retention_ms=config.alerting.history_retention,
            on_sent=self._count_notification,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self.forwarder = Forwarder(
            config.alerting.forward_to, config.alerting.forward_queue_capacity
        )
        self.alerting.forward = self.forwarder.enqueue
        self.query_gate = QueryGate(query.max_concurrent)
        self.instruments.queries_running.set_function(lambda: self.query_gate.running)
        self.instruments.queries_queued.set_function(lambda: self.query_gate.queued)
        # as many threads again as slots: those queue in the gate, where their timeout runs
        self.query_executor = ThreadPoolExecutor(
            max_workers=2 * query.max_concurrent, thread_name_prefix="query"
        )
        self.api_context = ApiContext(
            config=config,
            store=self.store,
            remote_write=self.decoder,
            auth=Authenticator(config.auth.tokens),
            audit=AuditLog(config.data_dir / "audit.log"),
            engine=self.engine,
            query_gate=self.query_gate,
            query_executor=self.query_executor,
            instruments=self.instruments,
            version=__version__,
            scrape=self.scrape,
            reload=self.reload,
            otlp=self.otlp,
            rules=self.rules,
            alerting=self.alerting,
        )
        self.api, self.asgi = create_api(self.api_context)
        self.grpc: OtlpGrpcServer | None = None
        self.api.router.lifespan_context = self._lifespan
        self._tasks: list[asyncio.Task[None]] = []

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def open(self) -> None:
        """Lock the data directory and open storage (replaying the WAL) before serving, so a
        problem there is a clean start-up error rather than a half-started server."""
        self.lock.acquire()
        try:
            _check_free(self.config.otlp.grpc_listen, "otlp.grpc_listen")
            # rule files are read again when the loops start; reading them here first makes a
            # broken one a clean start-up error
            self.rules.load(self.config.tenant_rule_file_patterns())
        except RuleFileError as err:
            self.lock.release()
            raise ConfigError(f"rule_files: {err}") from None
        except ConfigError:
            self.lock.release()
            raise
        started = time.monotonic()
        try:
            self.store.open()
            self.state = StateDB(self.config.data_dir / "state.sqlite")
            self.alerting.attach_state(self.state)
        except BaseException:
            self.lock.release()
            raise
        log.info("storage ready in %.2fs", time.monotonic() - started)

    async def start(self) -> None:
        """Start the background loops (storage is open)."""
        listen = self.config.otlp.grpc_listen
        if listen:
            try:
                self.grpc = OtlpGrpcServer(self.api_context, listen)
            except RuntimeError as err:
                raise ConfigError(f"otlp.grpc_listen: cannot listen on {listen}: {err}") from None
            await self.grpc.start()
        await self.scrape.apply(self.config.scrape_jobs())
        self._loop = asyncio.get_running_loop()
        await self.forwarder.start()
        await self.alerting.start()
        try:
            await self.rules.apply(self.config.tenant_rule_file_patterns())
        except RuleFileError as err:
            raise ConfigError(f"rule_files: {err}") from None
        with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):
            # only where the event loop runs in the main thread (the server, not every test)
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._reload_on_signal)
        interval = self.config.storage.compaction_check_interval / 1000
        self._tasks.append(asyncio.create_task(self._every(interval, self._maintain)))
        monitoring = self.config.self_monitoring
        if monitoring.enabled:
            self._tasks.append(
                asyncio.create_task(
                    # stored once right away, so a fresh install has data to query at once
                    self._every(monitoring.interval / 1000, self._store_own_metrics, now=True)
                )
            )

    async def reload(self) -> None:
        """Read the configuration again and apply what can change while running: the scrape
        jobs. Raises ConfigError, with nothing changed, if the new configuration is invalid."""
        async with self._reload_lock:
            config = await asyncio.to_thread(self._reload_config)
            try:
                jobs = config.scrape_jobs()
            except ValueError as err:
                raise ConfigError(str(err)) from None
            alertmanager = await asyncio.to_thread(_alertmanager_configs, config)
            try:
                await self.rules.apply(config.tenant_rule_file_patterns())
            except RuleFileError as err:
                raise ConfigError(f"rule_files: {err}") from None
            await self.scrape.apply(jobs)
            await self.alerting.reload(alertmanager)
            static = {"scrape", "scrape_configs", "rule_files", "tenant_rule_files", "alerting"}
            changed = [
                key
                for key in type(config).model_fields
                if key not in static and getattr(config, key) != getattr(self.config, key)
            ]
            if changed:
                log.warning("reload: changes to %s take effect at restart", ", ".join(changed))
            log.info("configuration reloaded: %d scrape jobs", len(jobs))

    def _count_notification(self, tenant: str, sent: Sent) -> None:
        kind = sent.integration.kind
        self.instruments.notifications.labels(kind).inc()
        if sent.error:
            self.instruments.notifications_failed.labels(kind, sent.integration.receiver).inc()

    def _alerts_from_rules(self, tenant: str, alerts: list[Alert]) -> None:
        """Called in a rule group's thread: the alerts go to the Alertmanager on the loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.alerting.receive, tenant, alerts)

    def _reload_on_signal(self) -> None:
        async def reload() -> None:
            try:
                await self.reload()
            except ConfigError as err:
                log.error("reload on SIGHUP failed, the previous configuration stays: %s", err)

        self._tasks.append(asyncio.create_task(reload()))

    async def stop(self) -> None:
        with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await self.scrape.stop()
        await self.rules.stop()
        await self.alerting.stop()
        await self.forwarder.stop()
        await self.notifiers.close()
        if self.grpc is not None:
            await self.grpc.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        # queued queries are refused; running ones (bounded by their timeout) finish before
        # the store closes under them
        self.query_gate.close()
        await asyncio.to_thread(self.query_executor.shutdown, wait=True, cancel_futures=True)
        await asyncio.to_thread(self.store.close)
        if self.state is not None:
            self.state.close()
        self.lock.release()

    async def _every(self, seconds: float, work: Callable[[], None], now: bool = False) -> None:
        failures = 0
        first = True
        while True:
            if not (first and now):
                await asyncio.sleep(seconds if failures == 0 else min(seconds * 2**failures, 300))
            first = False
            try:
                await asyncio.to_thread(work)
                failures = 0
            except Exception:
                failures += 1
                log.exception("background task %s failed (%d in a row)", work.__name__, failures)

    def _maintain(self) -> None:
        self.otlp.deltas.forget_idle(time.time() * 1000)
        self.store.compact()
        self.store.apply_retention()
        self.store.refresh_label_orders()

    def _store_own_metrics(self) -> None:
        self.instruments.active_series.set(self.store.series_count())
        now = int(time.time() * 1000)
        rows = []
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                labels = {
                    **sample.labels,
                    METRIC_NAME: sample.name,
                    "job": "watchkeeper",
                    "instance": self.config.listen,
                }
                rows.append((labels_from_dict(labels), now, float(sample.value)))
        if rows:
            self.store.append(self.config.self_monitoring.tenant, SeriesBatch.from_samples(rows))

    def serve(self) -> None:
        self.open()
        server = uvicorn.Server(
            uvicorn.Config(
                self.asgi,
                host=self.config.host,
                port=self.config.port,
                log_level="warning",
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=10,
            )
        )
        server.run()


# the Alertmanager configuration when none is given: alerts are kept and shown, sent nowhere
DEFAULT_ALERTMANAGER_CONFIG = """\
route:
  receiver: default
receivers:
  - name: default
"""


def check_files(config: Config) -> None:
    """What `serve` would refuse at start in the files the configuration names: every
    tenant's rule files and Alertmanager configurations; ConfigError naming the problem."""
    for tenant, patterns in config.tenant_rule_file_patterns().items():
        try:
            load_rule_files(patterns, config.metric_name_validation_scheme)
        except RuleFileError as err:  # worded as serve words it
            raise ConfigError(f"rule_files: tenant {tenant}: {err}") from None
    _alertmanager_configs(config)


def _alertmanager_configs(config: Config) -> AlertmanagerSetups:
    """The Alertmanager configuration and policies for every tenant without its own, and
    those of each tenant in alerting.tenants."""
    default = _alertmanager_setup(config, None, config.alerting)
    tenants = {
        tenant: _alertmanager_setup(config, tenant, section)
        for tenant, section in config.alerting.tenants.items()
    }
    return AlertmanagerSetups(default, tenants)


def _alertmanager_setup(
    config: Config, tenant: str | None, section: AlertingSection | TenantAlertingSection
) -> AlertmanagerSetup:
    where = "alerting." if tenant is None else f"alerting.tenants.{tenant}."
    path = config.alertmanager_config_path(tenant)
    try:
        if path is None:
            alertmanager = parse_alertmanager_text(DEFAULT_ALERTMANAGER_CONFIG)
        else:
            alertmanager = load_alertmanager_config(path)
    except RoutingError as err:
        raise ConfigError(f"{where}alertmanager_config: {err}") from None
    try:
        policies = build_policies(
            alertmanager, section.escalation_policies, section.receiver_active_time_intervals
        )
    except RoutingError as err:
        raise ConfigError(f"{where}{err}") from None
    return AlertmanagerSetup(alertmanager, policies)
