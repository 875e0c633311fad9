"""Receivers: one pure decoder per protocol, turning wire bytes into model.SeriesBatch.

Decoders do no I/O and know nothing of HTTP; the HTTP layer reads the body, calls a decoder and
hands the batch to the store's one write path: remote_write, OTLP metrics (otlp_metrics.py,
with delta-to-cumulative state in otlp_delta.py), and scraping (scrape/, with the exposition
parsers and Prometheus relabelling). Must not import `api`.
"""

from watchkeeper.ingest.otlp_delta import DeltaStreams
from watchkeeper.ingest.otlp_metrics import OtlpError, OtlpFormat, OtlpLimits, OtlpMetricsDecoder
from watchkeeper.ingest.pipeline import OtlpOutcome, WriteOutcome, otlp_metrics, remote_write
from watchkeeper.ingest.remote_write import (
    DecodedWrite,
    RemoteWriteDecoder,
    RemoteWriteError,
    RemoteWriteLimits,
)

__all__ = [
    "DecodedWrite",
    "DeltaStreams",
    "OtlpError",
    "OtlpFormat",
    "OtlpLimits",
    "OtlpMetricsDecoder",
    "OtlpOutcome",
    "RemoteWriteDecoder",
    "RemoteWriteError",
    "RemoteWriteLimits",
    "WriteOutcome",
    "otlp_metrics",
    "remote_write",
]
