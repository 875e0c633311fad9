"""What the HTTP layer is handed by the app: the collaborators its routers call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from watchkeeper.alerting import AlertingService
from watchkeeper.api.auth import Authenticator
from watchkeeper.api.instruments import Instruments
from watchkeeper.config import Config
from watchkeeper.ingest import OtlpMetricsDecoder, RemoteWriteDecoder
from watchkeeper.ingest.scrape import ScrapeManager
from watchkeeper.promql import Engine, QueryGate
from watchkeeper.rules import TenantRules
from watchkeeper.store import AuditLog, MetricsDB


@dataclass
class ApiContext:
    config: Config
    store: MetricsDB
    remote_write: RemoteWriteDecoder
    auth: Authenticator
    audit: AuditLog
    engine: Engine
    query_gate: QueryGate
    # query threads, apart from the shared pool, so queries waiting in the gate never hold up
    # writes or metadata reads
    query_executor: Executor
    instruments: Instruments
    version: str
    scrape: ScrapeManager
    # reads the configuration again and applies it (raises ConfigError)
    reload: Callable[[], Awaitable[None]]
    otlp: OtlpMetricsDecoder
    rules: TenantRules
    alerting: AlertingService
