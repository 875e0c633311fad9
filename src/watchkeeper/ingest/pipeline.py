"""The receivers' common tail: decoded batch -> store.append -> one outcome for the caller."""

from __future__ import annotations

from dataclasses import dataclass, field

from watchkeeper.ingest.otlp_metrics import OtlpFormat, OtlpMetricsDecoder
from watchkeeper.ingest.remote_write import RemoteWriteDecoder
from watchkeeper.store import MetricStore


@dataclass
class WriteOutcome:
    received: int
    appended: int
    # reason -> rejected samples; `message` explains them for a 400 answer
    rejected: dict[str, int] = field(default_factory=dict)
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.rejected


def remote_write(
    decoder: RemoteWriteDecoder, store: MetricStore, tenant: str, body: bytes
) -> WriteOutcome:
    """Decode a remote_write body and store its valid series. Raises RemoteWriteError when the
    body as a whole is unusable; otherwise stores what is valid and reports the rest."""
    decoded = decoder.decode(body)
    result = store.append(tenant, decoded.batch)
    rejected = dict(decoded.rejected)
    examples = list(decoded.examples)
    for reason, (count, example) in result.rejected.items():
        rejected[reason] = rejected.get(reason, 0) + count
        examples.append(f"{reason}: {example}")
    received = len(decoded.batch) + decoded.rejected_samples
    outcome = WriteOutcome(received=received, appended=result.appended, rejected=rejected)
    if rejected:
        total = sum(rejected.values())
        counts = ", ".join(f"{reason}: {count}" for reason, count in sorted(rejected.items()))
        outcome.message = (
            f"rejected {total} of {received} samples ({counts}); the other samples were stored. "
            + "; ".join(examples[:5])
        )
    return outcome


@dataclass
class OtlpOutcome:
    points: int  # OTLP data points received
    appended: int  # samples stored
    rejected_points: int  # data points refused, by the decoder or the store
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> data points
    message: str = ""


def otlp_metrics(
    decoder: OtlpMetricsDecoder, store: MetricStore, tenant: str, body: bytes, fmt: OtlpFormat
) -> OtlpOutcome:
    """Decode an OTLP metrics request and store what is valid. Raises OtlpError when the
    request as a whole is unusable; otherwise the outcome counts the data points refused, with
    reasons, for OTLP's partial success answer."""
    decoded = decoder.decode(body, fmt, tenant)
    result = store.append(tenant, decoded.batch)
    rejected = dict(decoded.rejected)
    examples = list(decoded.examples)
    for reason, (count, example) in result.rejected.items():
        # a store refusal is per sample; a histogram point makes several, so this counts
        # samples where the decoder counts points (an upper bound of the points concerned)
        rejected[reason] = rejected.get(reason, 0) + count
        examples.append(f"{reason}: {example}")
    refused = min(sum(rejected.values()), decoded.points)
    outcome = OtlpOutcome(
        points=decoded.points,
        appended=result.appended,
        rejected_points=refused,
        rejected=rejected,
    )
    if rejected:
        counts = ", ".join(f"{reason}: {count}" for reason, count in sorted(rejected.items()))
        outcome.message = (
            f"rejected {refused} of {decoded.points} data points ({counts}); the others were "
            "stored. " + "; ".join(examples[:5])
        )
    return outcome
