"""Storage: the metrics store protocol and its embedded backend (WAL, head, Parquet blocks).

Owns every byte on disk; layers above call the MetricStore protocol and never see files, WAL
records, chunks or blocks. Must not import anything above `model`.
"""

from watchkeeper.store.audit import AuditLog
from watchkeeper.store.protocol import MetricStore, StateStore
from watchkeeper.store.tsdb import MetricsDB
from watchkeeper.store.types import AppendResult, SeriesColumns, SeriesSamples, StorageOptions
from watchkeeper.store.wal import WALFailedError

__all__ = [
    "AppendResult",
    "AuditLog",
    "MetricStore",
    "MetricsDB",
    "SeriesColumns",
    "SeriesSamples",
    "StateStore",
    "StorageOptions",
    "WALFailedError",
]
