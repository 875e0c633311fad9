"""Small durable tables for state that is not a time series: silences, the notification log,
acknowledgements, escalations (each row a JSON document under (kind, tenant, key)), and the
alert history (events by tenant and time). One SQLite file, `state.sqlite` in the data
directory.

SQLite because these are small, keyed, updated one row at a time and must survive kill -9 the
moment they are acknowledged: each write is its own transaction, committed with
synchronous=FULL in WAL mode, which is what SQLite promises durability for. The metrics store
(DuckDB and Parquet blocks) is built for scans of many rows, not for this.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from watchkeeper.store.protocol import StateStore

log = logging.getLogger(__name__)

# a write-behind batch is committed when this many writes wait, or when the queue runs dry
BATCH_WRITES = 2000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    kind TEXT NOT NULL,
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, tenant, key)
);
CREATE TABLE IF NOT EXISTS history (
    tenant TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    event TEXT NOT NULL,
    alertname TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_time ON history (tenant, at_ms);
"""


def _dumps(body: Any) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


class StateDB:
    """The embedded StateStore (protocol.py); safe to call from any thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def put(self, kind: str, tenant: str, key: str, body: Any) -> None:
        text = _dumps(body)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO state (kind, tenant, key, body) VALUES (?, ?, ?, ?)",
                (kind, tenant, key, text),
            )

    def delete(self, kind: str, tenant: str, key: str) -> None:
        with self._lock:
            self._db.execute(
                "DELETE FROM state WHERE kind = ? AND tenant = ? AND key = ?", (kind, tenant, key)
            )

    def load(self, kind: str) -> dict[str, dict[str, Any]]:
        """Every document of a kind: tenant -> key -> document."""
        with self._lock:
            rows = self._db.execute(
                "SELECT tenant, key, body FROM state WHERE kind = ?", (kind,)
            ).fetchall()
        found: dict[str, dict[str, Any]] = {}
        for tenant, key, body in rows:
            found.setdefault(tenant, {})[key] = json.loads(body)
        return found

    def history(
        self, tenant: str, start_ms: int, end_ms: int, alertname: str | None = None
    ) -> list[tuple[int, str, dict[str, Any]]]:
        """Events from start to end (inclusive), oldest first; of one alertname if given."""
        query = "SELECT at_ms, event, body FROM history WHERE tenant = ? AND at_ms BETWEEN ? AND ?"
        args: list[Any] = [tenant, start_ms, end_ms]
        if alertname is not None:
            query += " AND alertname = ?"
            args.append(alertname)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY at_ms, rowid", args).fetchall()
        return [(at, event, json.loads(body)) for at, event, body in rows]

    def drop_history_before(self, at_ms: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM history WHERE at_ms < ?", (at_ms,))

    def apply(self, writes: Any) -> None:
        """WriteBehind's batch, in one transaction."""
        puts, deletes, history = [], [], []
        for op, kind, tenant, key, body in writes:
            if op == "put":
                puts.append((kind, tenant, key, _dumps(body)))
            elif op == "delete":
                deletes.append((kind, tenant, key))
            else:
                at_ms, document = body
                history.append((tenant, at_ms, kind, key, _dumps(document)))
        if not (puts or deletes or history):
            return
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO state (kind, tenant, key, body) VALUES (?, ?, ?, ?)",
                    puts,
                )
                self._db.executemany(
                    "DELETE FROM state WHERE kind = ? AND tenant = ? AND key = ?", deletes
                )
                self._db.executemany(
                    "INSERT INTO history (tenant, at_ms, event, alertname, body) "
                    "VALUES (?, ?, ?, ?, ?)",
                    history,
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()


Write = tuple[str, str, str, str, Any]  # op ("put", "delete", "history"), kind, tenant, key, body


class WriteBehind:
    """Writes that need not hold up their caller (the notification log, the history): queued
    and committed by one thread in batches, one transaction and one sync per batch. What is
    queued when the process is killed may be lost (a notification might then be repeated);
    `stop` commits everything queued."""

    def __init__(self, state: StateStore) -> None:
        self.state = state
        self._queue: queue.SimpleQueue[Write | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="state-writer", daemon=True)
        self._thread.start()

    def put(self, kind: str, tenant: str, key: str, body: Any) -> None:
        self._queue.put(("put", kind, tenant, key, body))

    def delete(self, kind: str, tenant: str, key: str) -> None:
        self._queue.put(("delete", kind, tenant, key, None))

    def history(self, tenant: str, at_ms: int, event: str, alertname: str, body: Any) -> None:
        self._queue.put(("history", event, tenant, alertname, (at_ms, body)))

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        done = threading.Event()
        self._queue.put(("sync", "", "", "", done))
        done.wait()

    def _run(self) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while len(batch) < BATCH_WRITES:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            writes = [w for w in batch if w is not None]
            stop = len(writes) < len(batch)
            try:
                self.state.apply(w for w in writes if w[0] != "sync")
            except Exception:  # a full disk must not stop alerting; the error is logged
                log.exception("writing %d state changes failed", len(writes))
            for write in writes:
                if write[0] == "sync":
                    write[4].set()
