"""The metrics store protocol every backend implements (embedded today; ClickHouse later)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from watchkeeper.model import Labels, Matcher, MetricMetadata, SeriesBatch

if TYPE_CHECKING:
    from watchkeeper.store.arrivals import ArrivalListener, SeriesNewest
    from watchkeeper.store.exemplars import Exemplar
    from watchkeeper.store.types import AppendResult, SeriesColumns, SeriesSamples


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
