"""The receivers' common tail: decoded batch -> store.append -> one outcome for the caller."""

from __future__ import annotations

from dataclasses import dataclass, field

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
