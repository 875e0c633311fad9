"""Small durable tables for state that is not a time series: silences, the notification log,
acknowledgements. One SQLite file (`state.sqlite` in the data directory), each row a JSON
document under (table, tenant, key).

SQLite because these are small, keyed, updated one row at a time and must survive kill -9 the
moment they are acknowledged: each write is its own transaction, committed with
synchronous=FULL in WAL mode, which is what SQLite promises durability for. The metrics store
(DuckDB and Parquet blocks) is built for scans of many rows, not for this.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    kind TEXT NOT NULL,
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, tenant, key)
)
"""


class StateDB:
    """Keyed JSON documents by kind and tenant; safe to call from any thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def put(self, kind: str, tenant: str, key: str, body: Any) -> None:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
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

    def close(self) -> None:
        with self._lock:
            self._db.close()
