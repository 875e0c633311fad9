"""Binary encodings of the WAL and checkpoint records of the metrics store.

Sample records carry whole columns (series ids, timestamps, values) as little-endian arrays, so
writing and replaying cost one copy per batch, not work per sample.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from watchkeeper.model import MetricMetadata, labels_from_key, series_key
from watchkeeper.store.exemplars import Exemplar
from watchkeeper.store.histograms import HistogramColumns

SERIES = b"S"
SAMPLES = b"D"
METADATA = b"M"
EXEMPLARS = b"E"
HISTOGRAMS = b"H"

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_SERIES_ENTRY = struct.Struct("<qI")
_EXEMPLAR_ENTRY = struct.Struct("<qqdI")  # series id, timestamp, value, labels key length


@dataclass
class SeriesRecord:
    tenant: str
    entries: list[tuple[int, bytes]]  # (series id, canonical series key)


@dataclass
class SamplesRecord:
    tenant: str
    series: npt.NDArray[np.int64]
    timestamps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]


@dataclass
class MetadataRecord:
    tenant: str
    entries: list[MetricMetadata]


@dataclass
class ExemplarsRecord:
    tenant: str
    entries: list[Exemplar]


@dataclass
class HistogramsRecord:
    tenant: str
    columns: HistogramColumns


Record = SeriesRecord | SamplesRecord | MetadataRecord | ExemplarsRecord | HistogramsRecord


def _tenant_prefix(kind: bytes, tenant: str) -> bytes:
    raw = tenant.encode()
    return kind + _U16.pack(len(raw)) + raw


def encode_series(tenant: str, entries: Sequence[tuple[int, bytes]]) -> bytes:
    parts = [_tenant_prefix(SERIES, tenant), _U32.pack(len(entries))]
    for sid, key in entries:
        parts.append(_SERIES_ENTRY.pack(sid, len(key)))
        parts.append(key)
    return b"".join(parts)


def encode_samples(
    tenant: str,
    series: npt.NDArray[np.int64],
    timestamps: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
) -> bytes:
    return b"".join(
        (
            _tenant_prefix(SAMPLES, tenant),
            _U32.pack(len(series)),
            series.astype("<i8", copy=False).tobytes(),
            timestamps.astype("<i8", copy=False).tobytes(),
            values.astype("<f8", copy=False).tobytes(),
        )
    )


def encode_metadata(tenant: str, entries: Sequence[MetricMetadata]) -> bytes:
    body = json.dumps([[m.metric, m.type, m.help, m.unit] for m in entries]).encode()
    return _tenant_prefix(METADATA, tenant) + body


def encode_exemplars(tenant: str, entries: Sequence[Exemplar]) -> bytes:
    parts = [_tenant_prefix(EXEMPLARS, tenant), _U32.pack(len(entries))]
    for entry in entries:
        key = series_key(entry.labels)
        parts.append(_EXEMPLAR_ENTRY.pack(entry.series, entry.timestamp_ms, entry.value, len(key)))
        parts.append(key)
    return b"".join(parts)


def encode_histograms(tenant: str, columns: HistogramColumns) -> bytes:
    return b"".join(
        (
            _tenant_prefix(HISTOGRAMS, tenant),
            _U32.pack(len(columns)),
            columns.sids.astype("<i8", copy=False).tobytes(),
            columns.timestamps.astype("<i8", copy=False).tobytes(),
            columns.offsets.astype("<i8", copy=False).tobytes(),
            columns.data,
        )
    )


def decode(payload: bytes) -> Record:
    kind = payload[:1]
    (tenant_len,) = _U16.unpack_from(payload, 1)
    tenant = payload[3 : 3 + tenant_len].decode()
    offset = 3 + tenant_len
    if kind == SERIES:
        (count,) = _U32.unpack_from(payload, offset)
        offset += _U32.size
        entries = []
        for _ in range(count):
            sid, key_len = _SERIES_ENTRY.unpack_from(payload, offset)
            offset += _SERIES_ENTRY.size
            entries.append((sid, payload[offset : offset + key_len]))
            offset += key_len
        return SeriesRecord(tenant, entries)
    if kind == SAMPLES:
        (count,) = _U32.unpack_from(payload, offset)
        offset += _U32.size
        width = 8 * count
        series = np.frombuffer(payload, dtype="<i8", count=count, offset=offset)
        timestamps = np.frombuffer(payload, dtype="<i8", count=count, offset=offset + width)
        values = np.frombuffer(payload, dtype="<f8", count=count, offset=offset + 2 * width)
        return SamplesRecord(
            tenant, series.astype(np.int64), timestamps.astype(np.int64), values.astype(np.float64)
        )
    if kind == METADATA:
        rows = json.loads(payload[offset:])
        return MetadataRecord(tenant, [MetricMetadata(*row) for row in rows])
    if kind == EXEMPLARS:
        (count,) = _U32.unpack_from(payload, offset)
        offset += _U32.size
        exemplars = []
        for _ in range(count):
            sid, at, value, key_len = _EXEMPLAR_ENTRY.unpack_from(payload, offset)
            offset += _EXEMPLAR_ENTRY.size
            labels = labels_from_key(payload[offset : offset + key_len])
            offset += key_len
            exemplars.append(Exemplar(sid, labels, value, at))
        return ExemplarsRecord(tenant, exemplars)
    if kind == HISTOGRAMS:
        (count,) = _U32.unpack_from(payload, offset)
        offset += _U32.size
        width = 8 * count
        sids = np.frombuffer(payload, dtype="<i8", count=count, offset=offset)
        times = np.frombuffer(payload, dtype="<i8", count=count, offset=offset + width)
        offsets = np.frombuffer(payload, dtype="<i8", count=count + 1, offset=offset + 2 * width)
        data = payload[offset + 3 * width + 8 :]
        return HistogramsRecord(
            tenant,
            HistogramColumns(
                sids.astype(np.int64), times.astype(np.int64), offsets.astype(np.int64), data
            ),
        )
    raise ValueError(f"unknown WAL record type {kind!r}")
