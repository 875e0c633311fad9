"""The scrape manager: one pool per job, one loop per target, and the targets page.

`apply` takes the whole list of jobs, at start and at every reload: a job whose configuration
did not change keeps its loops (and their series memory and staleness tracking); a changed job
gets new ones; a removed job stops. Within a job, targets follow discovery: a target that
appears starts scraping, one that disappears gets staleness markers for its series, as
Prometheus writes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from watchkeeper.ingest.scrape.config import ScrapeConfig, ScrapeConfigError
from watchkeeper.ingest.scrape.discovery import FileDiscovery, static_groups
from watchkeeper.ingest.scrape.loop import ScrapeLoop, TargetHealth
from watchkeeper.ingest.scrape.series import ScrapeLimits
from watchkeeper.ingest.scrape.targets import (
    DroppedTarget,
    Target,
    TargetError,
    discovered_labels,
    populate,
)
from watchkeeper.store import MetricStore

log = logging.getLogger(__name__)

# how often file_sd files are checked for changes (a stat each; they are re-read only when
# their modification time or size changed, or at their refresh_interval)
FILE_SD_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class ActiveTarget:
    target: Target
    health: TargetHealth


@dataclass(frozen=True)
class PoolStatus:
    job: str
    active: list[ActiveTarget]
    dropped: list[DroppedTarget]
    discovery_errors: dict[str, str]


@dataclass
class _Running:
    loop: ScrapeLoop
    task: asyncio.Task[None]


@dataclass
class _Pool:
    config: ScrapeConfig
    client: httpx.AsyncClient
    files: list[FileDiscovery]
    running: dict[tuple[object, ...], _Running] = field(default_factory=dict)
    dropped: list[DroppedTarget] = field(default_factory=list)


class ScrapeManager:
    def __init__(
        self,
        store: MetricStore,
        tenant: str,
        server_limits: ScrapeLimits,
        user_agent: str,
        offset_seed: int = 0,
        clock: Callable[[], float] = time.time,
        workers: int = 4,
    ) -> None:
        self.store = store
        self.tenant = tenant
        self.server_limits = server_limits
        self.user_agent = user_agent
        self.offset_seed = offset_seed
        self.clock = clock
        # Parsing and storing bodies holds the GIL most of the time, so more threads than a
        # few would not scrape faster; they would only hold more bodies in memory at once.
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scrape")
        self._pools: dict[str, _Pool] = {}
        self._watcher: asyncio.Task[None] | None = None
        # one change of pools at a time: a reload and a file_sd change both await midway
        self._changing = asyncio.Lock()

    # --- lifecycle ----------------------------------------------------------------------

    async def apply(self, configs: list[ScrapeConfig]) -> None:
        """Run exactly these jobs from now on. Raises ScrapeConfigError, with nothing changed,
        when a job's TLS files cannot be used."""
        async with self._changing:
            await self._apply(configs)

    async def _apply(self, configs: list[ScrapeConfig]) -> None:
        wanted = {config.job_name: config for config in configs}
        fresh = {
            job: config
            for job, config in wanted.items()
            if job not in self._pools or self._pools[job].config != config
        }
        clients = {job: _client(config) for job, config in fresh.items()}
        for job in list(self._pools):
            if job not in wanted or job in fresh:
                # a removed or changed job: its loops stop without staleness markers, as
                # Prometheus' do when their pool stops (a changed job starts new ones at once)
                await self._stop_pool(self._pools.pop(job), mark_stale=False)
        for job, config in fresh.items():
            pool = _Pool(
                config=config,
                client=clients[job],
                files=[FileDiscovery(file_sd) for file_sd in config.file_sd_configs],
            )
            self._pools[job] = pool
            await asyncio.to_thread(self._refresh_files, pool, True)
            await self._sync(pool)
        if self._watcher is None and any(pool.files for pool in self._pools.values()):
            self._watcher = asyncio.create_task(self._watch_files())

    async def stop(self) -> None:
        """Stop every loop (shutdown: no staleness markers, the data just ends)."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        async with self._changing:
            for job in list(self._pools):
                await self._stop_pool(self._pools.pop(job), mark_stale=False)
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    def status(self) -> list[PoolStatus]:
        """Every job's targets, in job order, for the targets page."""
        out = []
        for job in sorted(self._pools):
            pool = self._pools[job]
            errors: dict[str, str] = {}
            for discovery in pool.files:
                errors.update(discovery.errors)
            out.append(
                PoolStatus(
                    job=job,
                    active=[
                        ActiveTarget(running.loop.target, running.loop.health)
                        for running in pool.running.values()
                    ],
                    dropped=list(pool.dropped),
                    discovery_errors=errors,
                )
            )
        return out

    def loops(self) -> list[ScrapeLoop]:
        return [running.loop for pool in self._pools.values() for running in pool.running.values()]

    # --- discovery ----------------------------------------------------------------------

    async def _watch_files(self) -> None:
        while True:
            await asyncio.sleep(FILE_SD_POLL_SECONDS)
            async with self._changing:
                for pool in list(self._pools.values()):
                    if not pool.files:
                        continue
                    try:
                        changed = await asyncio.to_thread(self._refresh_files, pool, False)
                        if changed:
                            await self._sync(pool)
                    except Exception:
                        log.exception("file discovery for job %s failed", pool.config.job_name)

    def _refresh_files(self, pool: _Pool, first: bool) -> bool:
        now = self.clock() * 1000
        changed = False
        for discovery in pool.files:
            changed |= discovery.refresh(now)
            for name, error in discovery.errors.items():
                log.warning("file_sd: error reading %s: %s", name, error)
        return changed or first

    async def _sync(self, pool: _Pool) -> None:
        """Start loops for new targets, stop those of targets that are gone."""
        config = pool.config
        groups = static_groups(config.static_configs)
        for discovery in pool.files:
            groups.extend(discovery.groups())
        targets: dict[tuple[object, ...], Target] = {}
        dropped: list[DroppedTarget] = []
        for group in groups:
            for number, labels in enumerate(group.targets):
                discovered = discovered_labels(config, labels, group.labels)
                try:
                    target = populate(config, discovered)
                except TargetError as err:
                    log.warning(
                        "job %s: instance %d in group %s: %s",
                        config.job_name,
                        number,
                        group.source,
                        err,
                    )
                    continue
                if target is None:
                    dropped.append(DroppedTarget(config.job_name, discovered))
                else:
                    targets.setdefault(target.identity, target)
        pool.dropped = dropped
        now_ms = int(self.clock() * 1000)
        for identity in [i for i in pool.running if i not in targets]:
            running = pool.running.pop(identity)
            await _cancel(running.task)
            await asyncio.to_thread(running.loop.stale_markers, now_ms)
        for identity, target in targets.items():
            if identity not in pool.running:
                loop = ScrapeLoop(
                    target,
                    config,
                    self._limits(config),
                    pool.client,
                    self.store,
                    self.tenant,
                    self.user_agent,
                    offset_seed=self.offset_seed,
                    clock=self.clock,
                    executor=self._executor,
                )
                pool.running[identity] = _Running(loop, asyncio.create_task(loop.run()))

    async def _stop_pool(self, pool: _Pool, mark_stale: bool) -> None:
        now_ms = int(self.clock() * 1000)
        for running in pool.running.values():
            await _cancel(running.task)
            if mark_stale:
                await asyncio.to_thread(running.loop.stale_markers, now_ms)
        pool.running.clear()
        await pool.client.aclose()

    def _limits(self, config: ScrapeConfig) -> ScrapeLimits:
        """The job's limits, never above the server's own (limits.* in the config)."""
        server = self.server_limits

        def capped(mine: int, theirs: int) -> int:
            return min(v for v in (mine, theirs) if v) if (mine or theirs) else 0

        return ScrapeLimits(
            body_size_limit=capped(config.body_size_limit, server.body_size_limit),
            sample_limit=capped(config.sample_limit, server.sample_limit),
            label_limit=capped(config.label_limit, server.label_limit),
            label_name_length_limit=capped(
                config.label_name_length_limit, server.label_name_length_limit
            ),
            label_value_length_limit=capped(
                config.label_value_length_limit, server.label_value_length_limit
            ),
        )


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _client(config: ScrapeConfig) -> httpx.AsyncClient:
    tls = config.tls
    try:
        context = ssl.create_default_context(cafile=tls.ca_file or None, cadata=tls.ca or None)
        if tls.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as err:
        raise ScrapeConfigError(f'job "{config.job_name}": tls_config: {err}') from None
    return httpx.AsyncClient(
        verify=context,
        follow_redirects=config.follow_redirects,
        timeout=None,  # each scrape has its own deadline (scrape_timeout)
        trust_env=False,  # outbound calls go where the config says, not where HTTP_PROXY does
    )
