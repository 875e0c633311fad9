"""One target's scrape loop: fetch, parse and store every interval, at the target's own place
in the interval, and report `up` and the other scrape series.

Fetching runs on the event loop (httpx, one connection pool per job); parsing and storing run
in a worker thread. A failure of any kind (connection, timeout, status, size, content type,
parse, limits) is the target's `up 0` and last error, with staleness markers for what it
exposed before; the loop itself never stops on one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import numpy as np
import numpy.typing as npt

from watchkeeper.ingest.exposition import ExpositionError, Format, format_of
from watchkeeper.ingest.scrape.config import PROTOCOLS, ScrapeConfig
from watchkeeper.ingest.scrape.series import (
    ScrapeError,
    ScrapeLimits,
    ScrapeOutcome,
    TargetSeries,
    join_batches,
    stale_values,
)
from watchkeeper.ingest.scrape.targets import Target
from watchkeeper.model import METRIC_NAME, Labels, MetricMetadata, SeriesBatch, series_key
from watchkeeper.store import MetricStore

log = logging.getLogger(__name__)

REPORT_SERIES = (
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
)
# a scrape that starts this close after its tick is stamped with the tick, so timestamps stay
# evenly spaced and compress well (Prometheus: --scrape.timestamp-tolerance)
TIMESTAMP_TOLERANCE_MS = 2


@dataclass
class TargetHealth:
    """What /api/v1/targets shows of a target."""

    health: str = "unknown"  # up, down, unknown (not scraped yet)
    last_error: str = ""
    last_scrape: datetime | None = None
    last_duration_s: float = 0.0


class ScrapeLoop:
    def __init__(
        self,
        target: Target,
        config: ScrapeConfig,
        limits: ScrapeLimits,
        client: httpx.AsyncClient,
        store: MetricStore,
        tenant: str,
        user_agent: str,
        offset_seed: int = 0,
        clock: Callable[[], float] = time.time,
        executor: Executor | None = None,
    ) -> None:
        self.target = target
        self.config = config
        self.client = client
        self.store = store
        self.tenant = tenant
        self.health = TargetHealth()
        # the families of the last body read in full (for /api/v1/targets/metadata)
        self.metadata: dict[str, MetricMetadata] = {}
        self.limits = limits
        self.series = TargetSeries(target.labels, config, limits)
        self._user_agent = user_agent
        self._offset_seed = offset_seed
        self._clock = clock
        self._executor = executor
        # a scrape still storing in its thread when the loop is cancelled must finish before
        # the target's staleness markers are written
        self._storing = threading.Lock()
        # the store's series ids for the last batch of a plan with no staleness markers: the
        # next batch of that plan has the same keys, and the store skips looking them up
        self._hint: tuple[object, int, npt.NDArray[np.int64]] | None = None
        self._report: list[Labels] = [
            tuple(sorted((*target.labels, (METRIC_NAME, name)))) for name in REPORT_SERIES
        ]
        self._report_keys = [series_key(labels) for labels in self._report]
        self._scraped_once = False

    # --- running ------------------------------------------------------------------------

    async def run(self) -> None:
        """Scrape every interval until cancelled."""
        interval = self.target.interval_ms
        offset = self.target.offset_ms(self._offset_seed)
        last = -math.inf
        while True:
            now_ms = self._clock() * 1000
            # the next instant at this target's place in the interval (never the last one
            # again: the event loop's clock may wake us a little before the wall clock's tick)
            tick = now_ms - (now_ms % interval) + offset
            while tick < now_ms or tick <= last:
                tick += interval
            last = tick
            await asyncio.sleep((tick - now_ms) / 1000)
            try:
                await self.scrape_once(tick)
            except Exception:  # the store failed under it: log, and try again next time
                log.exception("scrape of %s failed", self.target.url)

    async def scrape_once(self, tick_ms: float | None = None) -> None:
        started = time.perf_counter()
        now_ms = self._clock() * 1000
        at = int(now_ms)
        if tick_ms is not None and 0 <= now_ms - tick_ms <= TIMESTAMP_TOLERANCE_MS:
            at = int(tick_ms)
        error = ""
        body = b""
        content_type = ""
        try:
            body, content_type = await self._fetch()
        except ScrapeError as err:
            error = str(err)
        except httpx.HTTPError as err:
            error = _describe_http_error(err, self.target.url)
        except Exception as err:  # an unusable URL, a protocol error below httpx
            error = f'Get "{self.target.url}": {err or type(err).__name__}'
        await asyncio.get_running_loop().run_in_executor(
            self._executor, self._store, body, content_type, error, at, started
        )

    def stale_markers(self, at_ms: int) -> None:
        """Mark every series of this target stale: it is gone from discovery."""
        with self._storing:
            if not self._scraped_once:
                return
            batch = self.series.stale_all(at_ms)
            report = _report_batch(self._report, self._report_keys, at_ms, stale_values(5))
            self.store.append(self.tenant, join_batches(batch, report))

    # --- one scrape ---------------------------------------------------------------------

    async def _fetch(self) -> tuple[bytes, str]:
        config = self.config
        timeout_s = self.target.timeout_ms / 1000
        headers = {
            "Accept": config.accept_header(),
            "Accept-Encoding": "gzip" if config.enable_compression else "identity",
            "User-Agent": self._user_agent,
            "X-Prometheus-Scrape-Timeout-Seconds": f"{timeout_s:g}",
        }
        authorization = config.credentials.header()
        if authorization:
            headers["Authorization"] = authorization
        limit = self.limits.body_size_limit
        try:
            async with asyncio.timeout(timeout_s):
                extensions = (
                    {"sni_hostname": config.tls.server_name} if config.tls.server_name else {}
                )
                async with self.client.stream(
                    "GET", self.target.url, headers=headers, extensions=extensions
                ) as response:
                    if response.status_code != 200:
                        raise ScrapeError(
                            f"server returned HTTP status {response.status_code} "
                            f"{response.reason_phrase}"
                        )
                    chunks = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if limit and size >= limit:
                            raise ScrapeError(
                                f"body size limit exceeded (body_size_limit {limit} bytes)"
                            )
                        chunks.append(chunk)
                    return b"".join(chunks), response.headers.get("content-type", "")
        except TimeoutError:
            raise ScrapeError(
                f'Get "{self.target.url}": context deadline exceeded (scrape_timeout '
                f"{timeout_s:g}s)"
            ) from None

    def _format(self, content_type: str) -> Format:
        fallback = self.config.fallback_scrape_protocol
        fmt = format_of(content_type) if content_type else None
        if fmt is not None:
            return fmt
        if fallback:
            fallback_format = format_of(PROTOCOLS[fallback])
            assert fallback_format is not None  # every protocol we accept has a format
            return fallback_format
        if not content_type:
            raise ScrapeError(
                "non-compliant scrape target sending blank Content-Type and no "
                "fallback_scrape_protocol specified for target"
            )
        raise ScrapeError(
            f'received unsupported Content-Type "{content_type}" and no '
            "fallback_scrape_protocol specified for target"
        )

    def _store(self, body: bytes, content_type: str, error: str, at: int, started: float) -> None:
        with self._storing:
            self._store_locked(body, content_type, error, at, started)

    def _store_locked(
        self, body: bytes, content_type: str, error: str, at: int, started: float
    ) -> None:
        outcome: ScrapeOutcome | None = None
        scraped = post = added = 0
        if not error:
            try:
                # an empty body is an empty scrape, whatever its content type says
                fmt = self._format(content_type) if body else Format.TEXT
                outcome = self.series.scrape(body, fmt, at)
                scraped, post, added = outcome.scraped, outcome.post_relabel, outcome.series_added
            except (ExpositionError, ScrapeError) as err:
                error = str(err)
                scraped, post = getattr(err, "scraped", 0), getattr(err, "post_relabel", 0)
        batch = outcome.batch if outcome is not None else self.series.stale_all(at)
        duration = time.perf_counter() - started
        report = _report_batch(
            self._report,
            self._report_keys,
            at,
            [0.0 if error else 1.0, duration, float(scraped), float(post), float(added)],
        )
        batch = join_batches(batch, report)
        if outcome is not None and outcome.parsed:
            batch.metadata = outcome.metadata
            self.metadata = {entry.metric: entry for entry in outcome.metadata}
        plan = outcome.plan if outcome is not None and outcome.stale == 0 else None
        hint = self._hint
        if plan is not None and hint is not None and hint[0] is plan:
            batch.series_hint = (hint[1], hint[2])
        result = self.store.append(self.tenant, batch)
        self._hint = None
        if plan is not None and result.series_ids is not None:
            self._hint = (plan, result.generation, result.series_ids)
        self._scraped_once = True
        if result.rejected:
            log.debug("scrape of %s: %s", self.target.url, result.rejected)
        health = self.health
        health.health = "down" if error else "up"
        health.last_error = error
        health.last_scrape = datetime.fromtimestamp(at / 1000, tz=UTC)
        health.last_duration_s = duration


def _report_batch(
    labels: list[Labels], keys: list[bytes], at: int, values: Sequence[float] | np.ndarray
) -> SeriesBatch:
    return SeriesBatch(
        keys=keys,
        labels_of=labels.__getitem__,
        sample_series=np.arange(len(keys), dtype=np.int64),
        timestamps=np.full(len(keys), at, dtype=np.int64),
        values=np.asarray(values, dtype=np.float64),
    )


def _describe_http_error(err: httpx.HTTPError, url: str) -> str:
    detail = str(err) or type(err).__name__
    # the operating system's reason ("connection refused") is further down the chain
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            detail = f"{detail}: {cause.strerror.lower()}"
            break
        cause = cause.__cause__ or cause.__context__
    return f'Get "{url}": {detail}'
