"""Storage: the metrics store and state store protocols and their embedded backends (WAL,
head, Parquet blocks, for float and native histogram samples; SQLite for the alerting state),
and the arrivals of appended samples.

Owns every byte on disk; layers above call the MetricStore and StateStore protocols and never
see files, WAL records, chunks or blocks. Must not import anything above `model`.
"""

from watchkeeper.store.audit import AuditLog
from watchkeeper.store.protocol import MetricStore, StateStore
from watchkeeper.store.tsdb import MetricsDB
from watchkeeper.store.types import (
    AppendResult,
    HistogramSamples,
    SeriesColumns,
    SeriesSamples,
    StorageOptions,
)
from watchkeeper.store.wal import WALFailedError

__all__ = [
    "AppendResult",
    "AuditLog",
    "HistogramSamples",
    "MetricStore",
    "MetricsDB",
    "SeriesColumns",
    "SeriesSamples",
    "StateStore",
    "StorageOptions",
    "WALFailedError",
]
