"""Forwarding alerts to external Alertmanagers, as Prometheus' notifier sends them.

Every alert the built-in Alertmanager receives (from the rules, or posted to its API) is also
posted to each configured Alertmanager's `/api/v2/alerts`, in batches: whatever is queued when
the sender is free, at most `MAX_BATCH` alerts a request. The queue holds at most `capacity`
alerts; when it is full the oldest are dropped and counted, as Prometheus' notifier does (its
--alertmanager.notification-queue-capacity). A failing Alertmanager does not hold up the
others; its batch is retried with backoff a few times, then dropped and counted.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Sequence

import httpx

from watchkeeper.model.alerts import Alert
from watchkeeper.notify.gojson import Struct, document, go_time

log = logging.getLogger(__name__)

MAX_BATCH = 64  # Prometheus' maxBatchSize
ATTEMPTS = 3


def alerts_body(alerts: Sequence[Alert]) -> bytes:
    """The API v2 postable alerts, as Prometheus writes them."""
    return document(
        [
            Struct(
                labels=dict(a.labels),
                annotations=dict(a.annotations),
                startsAt=go_time(a.starts_at_ms),
                endsAt=go_time(a.ends_at_ms),
                generatorURL=a.generator_url,
            )
            for a in alerts
        ]
    )


class Forwarder:
    def __init__(self, urls: Sequence[str], capacity: int = 10_000) -> None:
        self.urls = [u.rstrip("/") + "/api/v2/alerts" for u in urls]
        self.capacity = capacity
        self.dropped = 0
        self.failed = 0
        self.sent = 0
        self._queues = [collections.deque[Alert]() for _ in self.urls]
        self._wake = [asyncio.Event() for _ in self.urls]
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    def enqueue(self, alerts: Sequence[Alert]) -> None:
        for queue, wake in zip(self._queues, self._wake, strict=True):
            queue.extend(alerts)
            over = len(queue) - self.capacity
            for _ in range(max(over, 0)):
                queue.popleft()
                self.dropped += 1
            wake.set()

    async def start(self) -> None:
        if not self.urls:
            return
        self._client = httpx.AsyncClient(timeout=10.0)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(i)) for i in range(len(self.urls))]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()

    async def _run(self, index: int) -> None:
        queue, wake, url = self._queues[index], self._wake[index], self.urls[index]
        assert self._client is not None
        while True:
            if not queue:
                wake.clear()
                await wake.wait()
            batch = [queue.popleft() for _ in range(min(MAX_BATCH, len(queue)))]
            body = alerts_body(batch)
            for attempt in range(ATTEMPTS):
                final = attempt == ATTEMPTS - 1
                try:
                    answer = await self._client.post(
                        url, content=body, headers={"Content-Type": "application/json"}
                    )
                    if answer.is_success:
                        self.sent += len(batch)
                        break
                    error = f"status {answer.status_code}: {answer.text[:200]}"
                    final = final or answer.status_code < 500  # a 4xx will not get better
                except httpx.HTTPError as err:
                    error = f"{type(err).__name__}: {err}"
                if final:
                    self.failed += len(batch)
                    log.warning("forwarding %d alerts to %s failed: %s", len(batch), url, error)
                    break
                await asyncio.sleep(0.5 * 2**attempt)
