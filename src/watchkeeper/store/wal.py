"""Write-ahead log: numbered segment files of checksummed records, fsynced by group commit.

A record is `length (u32) | crc32 (u32) | payload`. Writers hand records to `WriteAheadLog.submit`
and wait on the returned future; one writer thread takes everything queued, writes it, fsyncs
once, runs the apply callback for each record in order (so memory reflects exactly what is
durable, in log order), then completes the futures. That is group commit: many concurrent
requests share one fsync, and nothing is acknowledged before it is on disk.

Replay reads segments in order and stops at the first torn or corrupt record, which can only be
the tail of the last segment written before a crash; that tail is truncated away.
"""

from __future__ import annotations

import logging
import os
import queue
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")
SEGMENT_NAME_DIGITS = 8


def segment_name(seq: int) -> str:
    return f"{seq:0{SEGMENT_NAME_DIGITS}d}"


def list_segments(directory: Path) -> list[int]:
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit() and p.is_file())


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode_record(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_records(path: Path) -> tuple[list[bytes], int]:
    """Records of one segment and the byte offset where valid data ends."""
    data = path.read_bytes()
    records: list[bytes] = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        end = start + length
        if end > len(data) or zlib.crc32(data[start:end]) != crc:
            break
        records.append(data[start:end])
        offset = end
    return records, offset


@dataclass
class _Cut:
    """Queue marker: close the current segment and start the next; result is the new number."""

    future: Future[int]


@dataclass
class _Barrier:
    """Queue marker: completes once everything queued before it is durable and applied."""

    future: Future[None]


@dataclass
class _Write:
    payload: bytes
    apply: Callable[[], None] | None
    future: Future[None]


class WALFailedError(RuntimeError):
    """The log could not be written; the store refuses writes until restarted."""


class WriteAheadLog:
    def __init__(
        self,
        directory: Path,
        segment_bytes: int,
        observe_fsync: Callable[[float], None] | None = None,
    ) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._observe_fsync = observe_fsync
        self._queue: queue.Queue[_Write | _Cut | _Barrier | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._file: int | None = None
        self._segment = 0
        self._segment_size = 0
        self.failed: BaseException | None = None

    # --- replay -------------------------------------------------------------------------

    def replay(self, from_segment: int) -> Iterator[bytes]:
        """Payloads of every durable record in segments >= from_segment, in order. A torn tail is
        truncated; a corrupt record followed by later segments is an error worth stopping for."""
        self.directory.mkdir(parents=True, exist_ok=True)
        segments = [s for s in list_segments(self.directory) if s >= from_segment]
        for position, seq in enumerate(segments):
            path = self.directory / segment_name(seq)
            records, valid_end = read_records(path)
            size = path.stat().st_size
            if valid_end < size:
                if position != len(segments) - 1:
                    raise WALFailedError(
                        f"WAL segment {path} is corrupt at byte {valid_end} and is not the last "
                        "segment; move the later segments away to start with the data before it"
                    )
                log.warning(
                    "truncating torn WAL tail of %s at byte %d of %d", path, valid_end, size
                )
                with path.open("r+b") as handle:
                    handle.truncate(valid_end)
                    os.fsync(handle.fileno())
            yield from records

    # --- writing ------------------------------------------------------------------------

    def start(self) -> None:
        """Open a fresh segment after the newest existing one and start the writer thread."""
        existing = list_segments(self.directory)
        self._open_segment((existing[-1] + 1) if existing else 1)
        self._thread = threading.Thread(target=self._run, name="wal-writer", daemon=True)
        self._thread.start()

    @property
    def current_segment(self) -> int:
        return self._segment

    def submit(self, payload: bytes, apply: Callable[[], None] | None = None) -> Future[None]:
        """Queue one record. The future completes once it is fsynced and `apply` has run."""
        if self.failed is not None:
            raise WALFailedError(f"write-ahead log failed earlier: {self.failed}")
        future: Future[None] = Future()
        self._queue.put(_Write(payload, apply, future))
        return future

    def cut(self) -> Future[int]:
        """Close the current segment after everything queued so far; returns the new number."""
        future: Future[int] = Future()
        self._queue.put(_Cut(future))
        return future

    def barrier(self) -> Future[None]:
        """Completes once every record queued before it is durable and applied."""
        future: Future[None] = Future()
        self._queue.put(_Barrier(future))
        return future

    def remove_segments_before(self, seq: int) -> None:
        for old in list_segments(self.directory):
            if old < seq:
                (self.directory / segment_name(old)).unlink(missing_ok=True)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._file is not None:
            os.close(self._file)
            self._file = None

    def _open_segment(self, seq: int) -> None:
        if self._file is not None:
            os.fsync(self._file)
            os.close(self._file)
        path = self.directory / segment_name(seq)
        self._file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        fsync_dir(self.directory)
        self._segment = seq
        self._segment_size = os.fstat(self._file).st_size

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch: list[_Write | _Cut | _Barrier] = [item]
            stop = False
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._process(batch)
            if stop:
                return

    def _process(self, batch: list[_Write | _Cut | _Barrier]) -> None:
        pending: list[_Write] = []
        for item in batch:
            if isinstance(item, _Cut):
                self._commit(pending)
                pending = []
                if self.failed is None:
                    try:
                        self._open_segment(self._segment + 1)
                    except OSError as err:
                        self._fail(err)
                if self.failed is None:
                    item.future.set_result(self._segment)
                else:
                    item.future.set_exception(WALFailedError(str(self.failed)))
            elif isinstance(item, _Barrier):
                self._commit(pending)
                pending = []
                item.future.set_result(None)
            else:
                pending.append(item)
        self._commit(pending)

    def _commit(self, writes: list[_Write]) -> None:
        if not writes:
            return
        if self.failed is None:
            try:
                assert self._file is not None
                blob = b"".join(encode_record(w.payload) for w in writes)
                view = memoryview(blob)
                while view:
                    written = os.write(self._file, view)
                    view = view[written:]
                started = time.perf_counter()
                os.fdatasync(self._file)
                if self._observe_fsync is not None:
                    self._observe_fsync(time.perf_counter() - started)
                self._segment_size += len(blob)
            except OSError as err:
                self._fail(err)
        for write in writes:
            if self.failed is not None:
                write.future.set_exception(WALFailedError(f"write-ahead log failed: {self.failed}"))
                continue
            try:
                if write.apply is not None:
                    write.apply()
            except BaseException as err:  # apply bugs must not hang the waiting request
                log.exception("applying a durable WAL record failed")
                write.future.set_exception(err)
                continue
            write.future.set_result(None)
        if self.failed is None and self._segment_size >= self.segment_bytes:
            try:
                self._open_segment(self._segment + 1)
            except OSError as err:
                self._fail(err)

    def _fail(self, err: BaseException) -> None:
        log.error("write-ahead log failed, refusing further writes: %s", err)
        self.failed = err
