"""What the HTTP layer is handed by the app: the collaborators its routers call."""

from __future__ import annotations

from dataclasses import dataclass

from watchkeeper.api.auth import Authenticator
from watchkeeper.api.instruments import Instruments
from watchkeeper.config import Config
from watchkeeper.ingest import RemoteWriteDecoder
from watchkeeper.store import AuditLog, MetricsDB


@dataclass
class ApiContext:
    config: Config
    store: MetricsDB
    remote_write: RemoteWriteDecoder
    auth: Authenticator
    audit: AuditLog
    instruments: Instruments
    version: str
