"""Receivers: one pure decoder per protocol, turning wire bytes into model.SeriesBatch.

Decoders do no I/O and know nothing of HTTP; the HTTP layer reads the body, calls a decoder and
hands the batch to the store's one write path. Also owns Prometheus relabelling (relabel.py),
which collecting receivers apply to targets and samples. Must not import `api`.
"""

from watchkeeper.ingest.pipeline import WriteOutcome, remote_write
from watchkeeper.ingest.remote_write import (
    DecodedWrite,
    RemoteWriteDecoder,
    RemoteWriteError,
    RemoteWriteLimits,
)

__all__ = [
    "DecodedWrite",
    "RemoteWriteDecoder",
    "RemoteWriteError",
    "RemoteWriteLimits",
    "WriteOutcome",
    "remote_write",
]
