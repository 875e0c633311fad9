"""The rules manager: loads rule files, evaluates every group on its interval, and follows the
files as they change.

Each group evaluates at a fixed place in its interval (a hash of its file and name, as
Prometheus spreads groups), in a worker thread, one evaluation at a time per group; a group
still evaluating when its next turn comes skips that turn, as Prometheus' does, and counts it.
Applying a new set of groups keeps the state (alerts, series written) of every group whose
definition did not change, so a reload does not reset `for` clocks.

With `evaluate_on_arrival`, alerting rules of the form `selector op number` are also evaluated
between turns, as soon as a sample arrives that changes their answer (on_arrival.py): the
arrivals queue one evaluation of the group's rules concerned, in a thread of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from watchkeeper.model import Labels, NameValidation
from watchkeeper.model.alerts import Alert as Notice
from watchkeeper.promql import Engine
from watchkeeper.rules.group import GroupEvaluator, RestoreOptions, SendOptions
from watchkeeper.rules.on_arrival import ArrivalTriggers, RuleKey
from watchkeeper.rules.rulefile import RuleFileError, RuleGroup, load_file
from watchkeeper.store import MetricStore

log = logging.getLogger(__name__)

# how often rule files are checked for changes (a stat each)
FILE_POLL_SECONDS = 2.0
# how often rules evaluated on arrival look their series up again, after a turn: arrivals
# keep the watches current; the lookup only drops series the store has dropped since
ARRIVAL_LOOKUP_SECONDS = 3600.0


@dataclass(frozen=True)
class RulesOptions:
    evaluation_interval_ms: int = 60_000
    tenant: str = "default"
    external_labels: Labels = ()
    external_url: str = ""
    name_validation: NameValidation = NameValidation.UTF8
    restore: RestoreOptions = field(default_factory=RestoreOptions)
    resend_delay_ms: int = 60_000  # Prometheus' --rules.alert.resend-delay
    # threads evaluating groups: their own, so rules never wait behind (nor hold up) ingest
    # work in the shared pool; evaluation is CPU-bound Python, so a few are enough
    workers: int = 2
    # alerting rules `selector op number` are also evaluated when an arriving sample changes
    # their answer (on_arrival.py); the lookback delta is what "the newest sample" spans
    evaluate_on_arrival: bool = False
    lookback_delta_ms: int = 300_000


@dataclass
class _Running:
    evaluator: GroupEvaluator
    task: asyncio.Task[None] | None = None
    missed: int = 0  # turns skipped because the previous evaluation was still running
    watched_at: float = 0.0  # when its rules evaluated on arrival last looked their series up


@dataclass
class RuleManager:
    engine: Engine
    store: MetricStore
    options: RulesOptions
    clock: Callable[[], float] = time.time
    # where alerts go (the Alertmanager): called from the evaluating thread with the tenant
    # and the alerts to send
    notify: Callable[[str, list[Notice]], None] | None = None
    _groups: dict[tuple[str, str], _Running] = field(default_factory=dict)
    _patterns: tuple[str, ...] = ()
    _stamps: dict[str, tuple[int, int]] = field(default_factory=dict)
    _watcher: asyncio.Task[None] | None = None
    _started: bool = False  # groups loaded at start restore their alerts' `for` state
    _executor: ThreadPoolExecutor | None = None
    # told how many rules each evaluation on arrival evaluated (the app counts them)
    count_arrival_evaluations: Callable[[int], None] | None = None
    # evaluation on arrival: the watches, and the rules waiting to be evaluated by group
    _triggers: ArrivalTriggers | None = None
    _arrival_executor: ThreadPoolExecutor | None = None
    _stop_listening: Callable[[], None] | None = None
    _waiting: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    _waiting_lock: threading.Lock = field(default_factory=threading.Lock)
    _watch_lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self, patterns: Sequence[str]) -> list[RuleGroup]:
        """The groups of every file the patterns name; RuleFileError (every problem of every
        file) if any file is invalid."""
        return load_rule_files(patterns, self.options.name_validation)

    async def apply(self, patterns: Sequence[str]) -> None:
        """Evaluate exactly the groups of these files from now on (RuleFileError, with nothing
        changed, when a file is invalid)."""
        groups = await asyncio.to_thread(self.load, patterns)
        self._patterns = tuple(patterns)
        self._stamps = _stamps(patterns)
        wanted = {(g.file, g.name): g for g in groups}
        if self.options.evaluate_on_arrival and self._triggers is None:
            # A thread of their own: queued behind the turns, they would wait for up to as
            # long as the turns take, which is what they are there to avoid.
            self._arrival_executor = ThreadPoolExecutor(1, thread_name_prefix="rules-arrival")
            self._triggers = ArrivalTriggers(
                self.options.tenant, self.options.lookback_delta_ms, self._arrived, self.clock
            )
            self._stop_listening = self.store.listen_arrivals(self._triggers)
        for key in list(self._groups):
            running = self._groups[key]
            if wanted.get(key) != running.evaluator.group:
                del self._groups[key]
                await _cancel(running.task)
                if self._triggers is not None:
                    with self._watch_lock:
                        self._triggers.forget([(*key, i) for i in running.evaluator.thresholds()])
        added: list[_Running] = []
        for key, group in wanted.items():
            if key not in self._groups:
                evaluator = GroupEvaluator(
                    group,
                    self.engine,
                    self.store,
                    self.options.tenant,
                    self.options.external_labels,
                    self.options.external_url,
                    # as Prometheus: only the groups of the first load, not of reloads
                    restore=None if self._started else self.options.restore,
                    send=self._send_options(group),
                )
                running = _Running(evaluator)
                running.task = asyncio.create_task(self._run(running))
                self._groups[key] = running
                added.append(running)
        self._started = True
        if self._triggers is not None:
            for running in added:
                await asyncio.to_thread(self._watch_series, running)
        if self._watcher is None and self._patterns:
            self._watcher = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
            self._triggers = None
        if self._arrival_executor is not None:
            pool, self._arrival_executor = self._arrival_executor, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
        with self._waiting_lock:
            self._waiting.clear()
        if self._watcher is not None:
            await _cancel(self._watcher)
            self._watcher = None
        for running in self._groups.values():
            await _cancel(running.task)
        self._groups.clear()
        if self._executor is not None:
            # queued evaluations are dropped; one running finishes (it holds the store)
            await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
            self._executor = None

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.options.workers, thread_name_prefix="rules"
            )
        return self._executor

    def evaluators(self) -> list[GroupEvaluator]:
        return [r.evaluator for _, r in sorted(self._groups.items())]

    def _send_options(self, group: RuleGroup) -> SendOptions | None:
        notify, tenant = self.notify, self.options.tenant
        if notify is None:
            return None
        return SendOptions(
            lambda alerts: notify(tenant, alerts),
            self.options.resend_delay_ms,
            self.interval_ms(group),
        )

    def interval_ms(self, group: RuleGroup) -> int:
        return group.interval_ms or self.options.evaluation_interval_ms

    async def _run(self, running: _Running) -> None:
        group = running.evaluator.group
        interval = self.interval_ms(group)
        offset = group_offset_ms(group, interval)
        last = -1
        while True:
            now = self.clock() * 1000
            tick = int(now - now % interval + offset)
            while tick < now or tick <= last:
                tick += interval
            last = tick
            await asyncio.sleep((tick - now) / 1000)
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._pool(), self._evaluate, running, tick
                )
            except Exception:  # the store failed under it: log, and go on next time
                log.exception("rule group %s (%s) failed", group.name, group.file)
            behind = int((self.clock() * 1000 - tick) // interval)
            if behind > 0:
                running.missed += behind
                last = tick + behind * interval  # skip the turns that passed meanwhile

    def _evaluate(self, running: _Running, tick: int) -> None:
        running.evaluator.evaluate(tick)
        self._watch_series(running)

    def _watch_series(self, running: _Running) -> None:
        """The group's rules evaluated on arrival watch their series: looked up when the group
        is loaded, and again after a turn every ARRIVAL_LOOKUP_SECONDS, which forgets series
        gone from the store (arrivals add new series as they come)."""
        triggers = self._triggers
        if triggers is None:
            return
        evaluator = running.evaluator
        key = (evaluator.group.file, evaluator.group.name)
        tenant, now = self.options.tenant, self.clock()
        due = [
            (index, threshold)
            for index, threshold in evaluator.thresholds().items()
            if now >= running.watched_at + ARRIVAL_LOOKUP_SECONDS
            or not triggers.watching((*key, index))
        ]
        if not due:
            return
        # under the lock apply() forgets a replaced group's rules with: a group replaced
        # before this looks does not look, one replaced after is forgotten after
        with self._watch_lock:
            if self._groups.get(key) is not running:
                return
            mark = triggers.mark([((*key, index), threshold) for index, threshold in due])
            updates = [
                ((*key, index), threshold, self.store.newest_samples(tenant, threshold.matchers))
                for index, threshold in due
            ]
            triggers.watch(updates, mark)
            running.watched_at = now

    def _arrived(self, keys: list[RuleKey]) -> None:
        """Arrivals changed these rules' answers (called on the appending thread): each
        group with rules to evaluate gets one evaluation of them queued, unless it has one."""
        queue = []
        with self._waiting_lock:
            for file, name, index in keys:
                waiting = self._waiting.get((file, name))
                if waiting is None:
                    self._waiting[(file, name)] = {index}
                    queue.append((file, name))
                else:
                    waiting.add(index)
        pool = self._arrival_executor
        for group in queue:
            try:
                if pool is None:
                    raise RuntimeError("stopped")
                pool.submit(self._evaluate_arrived, group)
            except RuntimeError:  # stopping: nothing more is evaluated
                with self._waiting_lock:
                    self._waiting.pop(group, None)

    def _evaluate_arrived(self, key: tuple[str, str]) -> None:
        with self._waiting_lock:
            indexes = self._waiting.pop(key, set())
        running = self._groups.get(key)
        if running is None:
            return
        indexes &= set(running.evaluator.thresholds())  # the group may have been replaced
        if not indexes:
            return
        try:
            done = running.evaluator.evaluate_rules(indexes, int(self.clock() * 1000))
        except Exception:
            log.exception("rule group %s (%s) failed on arrival", key[1], key[0])
            return
        if done and self.count_arrival_evaluations is not None:
            self.count_arrival_evaluations(done)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(FILE_POLL_SECONDS)
            if _stamps(self._patterns) == self._stamps:
                continue
            try:
                await self.apply(self._patterns)
                log.info("rule files changed: %d groups", len(self._groups))
            except RuleFileError as err:
                self._stamps = _stamps(self._patterns)  # report once per change
                log.error("rule files changed but are invalid, the previous rules stay: %s", err)


def load_rule_files(patterns: Sequence[str], name_validation: NameValidation) -> list[RuleGroup]:
    """The groups of every file the glob patterns name; RuleFileError (every problem of every
    file) if any file is invalid."""
    groups: list[RuleGroup] = []
    errors: list[str] = []
    for path in _expand(patterns):
        try:
            groups.extend(load_file(Path(path), name_validation))
        except RuleFileError as err:
            errors.extend(f"{path}: {e}" for e in err.errors)
    if errors:
        raise RuleFileError("", errors)  # each names its file
    return groups


def group_offset_ms(group: RuleGroup, interval_ms: int) -> int:
    """Where in its interval a group is evaluated: Prometheus 3.x's place for it (the hash of
    the labels {file, name} in its label encoding, modulo the interval in nanoseconds), so a
    group is evaluated at the same instants as by Prometheus."""

    def encoded(text: str) -> bytes:
        raw = text.encode()
        size = len(raw)
        prefix = (
            bytes([size])
            if size < 255
            else bytes([255, size & 255, size >> 8 & 255, size >> 16 & 255])
        )
        return prefix + raw

    key = encoded("file") + encoded(group.file) + encoded("name") + encoded(group.name)
    return xxhash.xxh64_intdigest(key) % (interval_ms * 1_000_000) // 1_000_000


def _expand(patterns: Sequence[str]) -> list[str]:
    return sorted({path for pattern in patterns for path in glob.glob(pattern)})


def _stamps(patterns: Sequence[str]) -> dict[str, tuple[int, int]]:
    stamps = {}
    for path in _expand(patterns):
        with contextlib.suppress(OSError):
            info = os.stat(path)
            stamps[path] = (info.st_mtime_ns, info.st_size)
    return stamps


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class TenantRules:
    """The rule managers of every tenant that has rule files: each tenant's rules read and
    write that tenant's series and raise that tenant's alerts. A tenant whose files are all
    gone stops."""

    def __init__(self, make: Callable[[str], RuleManager]) -> None:
        self._make = make
        self.managers: dict[str, RuleManager] = {}

    def load(self, files: Mapping[str, Sequence[str]]) -> None:
        """Check every tenant's files: RuleFileError (naming the tenant) if any is invalid."""
        for tenant, patterns in files.items():
            try:
                self._manager(tenant).load(patterns)
            except RuleFileError as err:
                where = f"tenant {tenant}" + (f": {err.path}" if err.path else "")
                raise RuleFileError(where, err.errors) from None

    async def apply(self, files: Mapping[str, Sequence[str]]) -> None:
        """Every tenant evaluates exactly its files from now on; if a tenant's files are
        invalid, RuleFileError and no tenant changes."""
        self.load(files)
        for tenant in [t for t in self.managers if t not in files]:
            await self.managers.pop(tenant).stop()
        for tenant, patterns in files.items():
            await self._manager(tenant).apply(patterns)

    async def stop(self) -> None:
        for manager in self.managers.values():
            await manager.stop()

    def get(self, tenant: str) -> RuleManager | None:
        return self.managers.get(tenant)

    def _manager(self, tenant: str) -> RuleManager:
        if tenant not in self.managers:
            self.managers[tenant] = self._make(tenant)
        return self.managers[tenant]
