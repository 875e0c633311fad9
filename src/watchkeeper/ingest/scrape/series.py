"""One target's scraped bodies -> sample batches for the store, with Prometheus' scrape
semantics: target labels joined to each series (`honor_labels`), `metric_relabel_configs`,
the label and sample limits (each fails the whole scrape), duplicates left out, explicit
timestamps (`honor_timestamps`), and staleness markers for series that stop appearing.

Work per scrape is kept off the per-sample path: what each series text became is remembered,
and when a body's layout (everything but the values) is the previous body's, the previous
scrape's plan is reused whole and only the values are read (exposition_layout). Series are
remembered by their keys alone (model.series_key): the store asks for a series' labels only
the first time it sees it, and they are read back from the key then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from watchkeeper.ingest.exposition import Exemplar, Format, parse
from watchkeeper.ingest.exposition_layout import Layout
from watchkeeper.ingest.relabel import relabel
from watchkeeper.ingest.scrape.config import ScrapeConfig
from watchkeeper.model import (
    METRIC_NAME,
    Labels,
    MetricMetadata,
    NameValidation,
    SeriesBatch,
    format_labels,
    is_valid_label_name,
    is_valid_metric_name,
    labels_from_key,
    series_key,
)

STALE_NAN_BITS = 0x7FF0000000000002  # Prometheus' staleness marker, a NaN of its own
EXPORTED_PREFIX = "exported_"


def stale_values(count: int) -> npt.NDArray[np.float64]:
    return np.full(count, STALE_NAN_BITS, dtype=np.uint64).view(np.float64)


class ScrapeError(ValueError):
    """The scrape failed as a whole (limits, labels); the message is the target's last error,
    and the counts are what the scrape series report for it."""

    def __init__(self, message: str, scraped: int = 0, post_relabel: int = 0) -> None:
        super().__init__(message)
        self.scraped = scraped
        self.post_relabel = post_relabel


@dataclass(frozen=True)
class ScrapeLimits:
    """The effective limits for one job (0: none): its own where set, capped by the server's."""

    body_size_limit: int = 0
    sample_limit: int = 0
    label_limit: int = 0
    label_name_length_limit: int = 0
    label_value_length_limit: int = 0


@dataclass
class ScrapeOutcome:
    batch: SeriesBatch
    scraped: int  # samples in the body
    post_relabel: int  # samples left after metric relabelling
    series_added: int  # series not in the previous scrape
    stale: int = 0  # staleness markers written
    duplicates: int = 0
    parsed: bool = False  # parsed in full: `metadata` is the body's whole metadata
    # what the batch's series are, before any staleness markers: batches of one plan and no
    # markers have the same keys in the same order
    plan: object = None
    metadata: list[MetricMetadata] = field(default_factory=list)


@dataclass
class _Plan:
    """What the samples of one body layout become: sample `keep[i]` of the body is batch
    series i. `tracked` holds the series that get staleness markers when they go (not those
    with their own timestamps)."""

    keys: list[bytes]
    keep: npt.NDArray[np.int64] | None  # None: every sample, in order
    scraped: int
    duplicates: int
    tracked: set[bytes]


class TargetSeries:
    def __init__(
        self,
        target_labels: Labels,
        config: ScrapeConfig,
        limits: ScrapeLimits,
    ) -> None:
        self.target_labels = target_labels
        self.config = config
        self.limits = limits
        # series text -> series key, or None where relabelling drops it
        self._entries: dict[bytes, bytes | None] = {}
        self._layout: Layout | None = None
        self._plan: _Plan | None = None
        self._tracked: set[bytes] = set()  # series written by the last scrape

    def scrape(self, body: bytes, fmt: Format, timestamp_ms: int) -> ScrapeOutcome:
        """The batch for one scraped body. Raises ExpositionError or ScrapeError when the
        scrape fails as a whole; `stale_all` then gives its staleness markers."""
        plan, layout = self._plan, self._layout
        if plan is not None and layout is not None:
            values = layout.values_if_unchanged(body)
            if values is not None:
                return self._outcome(plan, values, {}, timestamp_ms, added=0)
        exposition = parse(body, fmt, self._entries)
        entries = self._resolve(exposition.new_series)
        plan = self._plan_of(exposition.texts, exposition.timestamps, entries)
        limit = self.limits.sample_limit
        if limit and len(plan.keys) > limit:
            raise ScrapeError(
                f"sample limit exceeded ({len(plan.keys)} samples after relabelling, "
                f"sample_limit {limit})",
                scraped=plan.scraped,
                post_relabel=len(plan.keys) + plan.duplicates,
            )
        values = np.asarray(exposition.values, dtype=np.float64)
        added = sum(1 for key in plan.keys if key not in self._tracked)
        timestamps = exposition.timestamps if self.config.honor_timestamps else {}
        outcome = self._outcome(plan, values, timestamps, timestamp_ms, added=added)
        outcome.parsed = True
        outcome.metadata = list(exposition.metadata.values())
        if exposition.exemplars:
            outcome.batch.exemplars = self._exemplars(
                exposition.exemplars, exposition.texts, entries, plan.keys, timestamp_ms
            )
        # remember only what this body held, so a target's churn does not grow the memory
        self._entries = {text: entries[text] for text in exposition.texts}
        if exposition.timestamps or exposition.exemplars:
            self._layout, self._plan = None, None  # a layout cannot carry these
        else:
            self._layout, self._plan = Layout.of(body), plan
        return outcome

    def stale_all(self, timestamp_ms: int) -> SeriesBatch:
        """Staleness markers for every series the last scrape wrote: the target is down, or
        gone. The next scrape starts afresh."""
        tracked, self._tracked = self._tracked, set()
        self._layout, self._plan = None, None
        return _markers(sorted(tracked), timestamp_ms)

    # --- building -----------------------------------------------------------------------

    def _resolve(self, new: dict[bytes, Labels]) -> dict[bytes, bytes | None]:
        entries = dict(self._entries)
        for text, labels in new.items():
            entries[text] = self._series(labels)
        return entries

    def _series(self, exposed: Labels) -> bytes | None:
        """The key of the series an exposed label set becomes: None where relabelling drops
        it."""
        labels = dict(exposed)
        if self.config.honor_labels:
            for name, value in self.target_labels:
                labels.setdefault(name, value)
        else:
            conflicts = [(n, labels[n]) for n, _ in self.target_labels if labels.get(n)]
            for name, value in self.target_labels:
                labels[name] = value
            for name, value in sorted(conflicts, key=lambda c: len(c[0])):
                renamed = EXPORTED_PREFIX + name
                while labels.get(renamed):
                    renamed = EXPORTED_PREFIX + renamed
                labels[renamed] = value
        result: Labels | None = tuple(sorted((n, v) for n, v in labels.items() if v != ""))
        if self.config.metric_relabel_configs:
            result = relabel(result, self.config.metric_relabel_configs)  # type: ignore[arg-type]
        if not result:
            return None
        self._check_labels(result)
        return series_key(result)

    def _check_labels(self, labels: Labels) -> None:
        scheme = self.config.name_validation
        name = dict(labels).get(METRIC_NAME, "")
        if not name:
            raise ScrapeError(f"no metric name in {format_labels(labels)} after relabelling")
        if not is_valid_metric_name(name, scheme) or (
            scheme is NameValidation.LEGACY
            and not all(is_valid_label_name(n, scheme) for n, _ in labels if n != METRIC_NAME)
        ):
            raise ScrapeError(f"invalid metric name or label names: {format_labels(labels)}")
        limits = self.limits
        if limits.label_limit and len(labels) > limits.label_limit:
            raise ScrapeError(
                f"label_limit exceeded (metric: {name[:50]}, number of labels: {len(labels)}, "
                f"limit: {limits.label_limit})"
            )
        for label, value in labels:
            if limits.label_name_length_limit and len(label) > limits.label_name_length_limit:
                raise ScrapeError(
                    f"label_name_length_limit exceeded (metric: {name[:50]}, label name: "
                    f"{label[:50]}, length: {len(label)}, limit: "
                    f"{limits.label_name_length_limit})"
                )
            if limits.label_value_length_limit and len(value) > limits.label_value_length_limit:
                raise ScrapeError(
                    f"label_value_length_limit exceeded (metric: {name[:50]}, label name: "
                    f'{label[:50]}, value: "{value[:50]}", length: {len(value)}, limit: '
                    f"{limits.label_value_length_limit})"
                )

    def _plan_of(
        self,
        texts: Sequence[bytes],
        timestamps: dict[int, int],
        entries: dict[bytes, bytes | None],
    ) -> _Plan:
        keys: list[bytes] = []
        keep: list[int] = []
        seen: set[bytes] = set()
        duplicates = 0
        for sample, text in enumerate(texts):
            key = entries[text]
            if key is None:
                continue
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            keys.append(key)
            keep.append(sample)
        if timestamps and not self.config.track_timestamps_staleness:
            tracked = {
                key for key, sample in zip(keys, keep, strict=True) if sample not in timestamps
            }
        else:
            tracked = seen
        everything = len(keep) == len(texts)
        return _Plan(
            keys=keys,
            keep=None if everything else np.asarray(keep, dtype=np.int64),
            scraped=len(texts),
            duplicates=duplicates,
            tracked=tracked,
        )

    def _outcome(
        self,
        plan: _Plan,
        values: npt.NDArray[np.float64],
        explicit: dict[int, int],
        timestamp_ms: int,
        added: int,
    ) -> ScrapeOutcome:
        if plan.keep is not None:
            values = values[plan.keep]
        count = len(plan.keys)
        times = np.full(count, timestamp_ms, dtype=np.int64)
        if explicit:
            position = {sample: i for i, sample in enumerate(_kept(plan))}
            for sample, at in explicit.items():
                i = position.get(sample)
                if i is not None:
                    times[i] = at
        gone = [] if self._tracked is plan.tracked else sorted(self._tracked - plan.tracked)
        self._tracked = plan.tracked
        keys = plan.keys
        batch = SeriesBatch(
            keys=keys,
            labels_of=lambda i: labels_from_key(keys[i]),
            sample_series=np.arange(count, dtype=np.int64),
            timestamps=times,
            values=values,
        )
        if gone:
            batch = join_batches(batch, _markers(gone, timestamp_ms))
        return ScrapeOutcome(
            batch=batch,
            plan=plan,
            scraped=plan.scraped,
            post_relabel=count + plan.duplicates,
            series_added=added,
            stale=len(gone),
            duplicates=plan.duplicates,
        )

    def _exemplars(
        self,
        exemplars: list[Exemplar],
        texts: list[bytes],
        entries: dict[bytes, bytes | None],
        keys: list[bytes],
        timestamp_ms: int,
    ) -> list[tuple[int, Labels, float, int]]:
        """The exemplars of the series stored, by their position in the batch; one without a
        timestamp takes the scrape's, as Prometheus gives it."""
        position = {key: i for i, key in enumerate(keys)}
        out = []
        for exemplar in exemplars:
            key = entries[texts[exemplar.sample]]
            where = position.get(key) if key is not None else None
            if where is not None:
                at = exemplar.timestamp_ms if exemplar.timestamp_ms is not None else timestamp_ms
                out.append((where, exemplar.labels, exemplar.value, at))
        return out


def _kept(plan: _Plan) -> Sequence[int]:
    return range(len(plan.keys)) if plan.keep is None else plan.keep.tolist()


def _markers(keys: list[bytes], timestamp_ms: int) -> SeriesBatch:
    return SeriesBatch(
        keys=keys,
        labels_of=lambda i: labels_from_key(keys[i]),
        sample_series=np.arange(len(keys), dtype=np.int64),
        timestamps=np.full(len(keys), timestamp_ms, dtype=np.int64),
        values=stale_values(len(keys)),
    )


def join_batches(first: SeriesBatch, second: SeriesBatch) -> SeriesBatch:
    """One batch holding both, so one scrape is one store append (one WAL record)."""
    split = len(first.keys)
    keys = [*first.keys, *second.keys]

    def labels_of(i: int) -> Labels:
        return first.labels_of(i) if i < split else second.labels_of(i - split)

    return SeriesBatch(
        keys=keys,
        labels_of=labels_of,
        sample_series=np.concatenate([first.sample_series, second.sample_series + split]),
        timestamps=np.concatenate([first.timestamps, second.timestamps]),
        values=np.concatenate([first.values, second.values]),
        metadata=[*first.metadata, *second.metadata],
        exemplars=[
            *first.exemplars,
            *((i + split, labels, value, at) for i, labels, value, at in second.exemplars),
        ],
    )
