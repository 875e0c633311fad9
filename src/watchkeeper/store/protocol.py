"""The store protocols every backend implements (embedded today; ClickHouse later): metrics,
and the small state tables of alerting."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from watchkeeper.model import Labels, Matcher, MetricMetadata, SeriesBatch

if TYPE_CHECKING:
    from watchkeeper.store.arrivals import ArrivalListener, SeriesNewest
    from watchkeeper.store.exemplars import Exemplar
    from watchkeeper.store.types import (
        AppendResult,
        HistogramSamples,
        SeriesColumns,
        SeriesSamples,
    )


class MetricStore(Protocol):
    def append(self, tenant: str, batch: SeriesBatch) -> AppendResult:
        """Store a batch; return only once the appended samples are durable."""
        ...

    def listen_arrivals(self, listener: ArrivalListener) -> Callable[[], None]:
        """Call `listener` with the samples each append made durable, once they can be read;
        returns the function that stops it."""
        ...

    def newest_samples(self, tenant: str, matchers: Sequence[Matcher]) -> SeriesNewest:
        """The newest sample of each series the matchers select, by series id, as
        arrivals name them."""
        ...

    def series(
        self,
        tenant: str,
        matcher_sets: Sequence[Sequence[Matcher]],
        start: int = ...,
        end: int = ...,
        limit: int = 0,
    ) -> list[Labels]: ...

    def label_names(
        self,
        tenant: str,
        matcher_sets: Sequence[Sequence[Matcher]] | None = None,
        start: int = ...,
        end: int = ...,
    ) -> list[str]: ...

    def label_values(
        self,
        tenant: str,
        name: str,
        matcher_sets: Sequence[Sequence[Matcher]] | None = None,
        start: int = ...,
        end: int = ...,
    ) -> list[str]: ...

    def read(
        self,
        tenant: str,
        matcher_sets: Sequence[Sequence[Matcher]],
        start: int = ...,
        end: int = ...,
    ) -> list[SeriesSamples]: ...

    def read_newest(
        self, tenant: str, matcher_sets: Sequence[Sequence[Matcher]], at: int, lookback: int
    ) -> SeriesColumns | None:
        """Each matching series' newest sample in (at - lookback, at], from memory; None when
        the store cannot tell without a read."""
        ...

    def read_histograms(
        self,
        tenant: str,
        matcher_sets: Sequence[Sequence[Matcher]],
        start: int = ...,
        end: int = ...,
    ) -> list[HistogramSamples]:
        """Native histogram samples of the matching series, sorted by labels."""
        ...

    def read_columns(
        self,
        tenant: str,
        matcher_sets: Sequence[Sequence[Matcher]],
        start: int = ...,
        end: int = ...,
    ) -> SeriesColumns: ...

    def read_column_batches(
        self,
        tenant: str,
        matcher_sets: Sequence[Sequence[Matcher]],
        start: int,
        end: int,
        batch_samples: int,
    ) -> Iterable[SeriesColumns]:
        """`read_columns` in batches of whole series of about `batch_samples` samples (all at
        once for 0); series in label order within a batch, batches in any order."""
        ...

    def metadata(self, tenant: str) -> dict[str, MetricMetadata]: ...

    def exemplars(
        self,
        tenant: str,
        matcher_sets: Sequence[Sequence[Matcher]],
        start: int = ...,
        end: int = ...,
    ) -> list[tuple[Labels, list[Exemplar]]]: ...

    def tsdb_status(self, tenant: str, top: int = 10) -> dict[str, object]: ...

    def series_count(self, tenant: str | None = None) -> int: ...


class StateStore(Protocol):
    """Small durable tables for state that is not a time series: JSON documents under
    (kind, tenant, key) — silences, the notification log, acknowledgements, escalations,
    alerts — and the alert history (events by tenant and time). A write returns once it is
    durable."""

    def put(self, kind: str, tenant: str, key: str, body: Any) -> None: ...

    def delete(self, kind: str, tenant: str, key: str) -> None: ...

    def load(self, kind: str) -> dict[str, dict[str, Any]]:
        """Every document of a kind: tenant -> key -> document."""
        ...

    def history(
        self, tenant: str, start_ms: int, end_ms: int, alertname: str | None = None
    ) -> list[tuple[int, str, dict[str, Any]]]:
        """Events from start to end (inclusive), oldest first; of one alertname if given."""
        ...

    def drop_history_before(self, at_ms: int) -> None: ...

    def apply(self, writes: Iterable[tuple[str, str, str, str, Any]]) -> None:
        """A batch of puts, deletes and history events (WriteBehind's), in one transaction."""
        ...

    def close(self) -> None: ...
