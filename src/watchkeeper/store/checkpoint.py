"""Checkpoint files: the head as it was when a WAL segment began, replacing older segments.

`checkpoint.<N>` holds the same records as WAL segments (series, samples, metadata) and stands
for every segment before N. It is written under a temporary name, fsynced and renamed, and only
then are the older checkpoint and segments deleted, so a crash at any point leaves either the
old checkpoint with its segments or the new one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from watchkeeper.store.wal import encode_record, fsync_dir, read_records

PREFIX = "checkpoint."
TMP_SUFFIX = ".tmp"


def _seq(path: Path) -> int:
    return int(path.name[len(PREFIX) :])


def newest(directory: Path) -> tuple[int, list[bytes]]:
    """The newest complete checkpoint's segment number and records ((0, []) if none);
    leftovers of interrupted writes are removed."""
    for leftover in directory.glob(f"{PREFIX}*{TMP_SUFFIX}"):
        leftover.unlink()
    found = sorted(directory.glob(f"{PREFIX}*"), key=_seq)
    if not found:
        return 0, []
    payloads, _ = read_records(found[-1])
    return _seq(found[-1]), payloads


def write(directory: Path, seq: int, payloads: Iterable[bytes]) -> None:
    """Durably write checkpoint `seq` and delete older checkpoints."""
    final = directory / f"{PREFIX}{seq}"
    tmp = final.with_name(final.name + TMP_SUFFIX)
    with tmp.open("wb") as handle:
        for payload in payloads:
            handle.write(encode_record(payload))
        handle.flush()
        os.fsync(handle.fileno())
    tmp.rename(final)
    fsync_dir(directory)
    for old in directory.glob(f"{PREFIX}*"):
        if old != final and not old.name.endswith(TMP_SUFFIX):
            old.unlink()
