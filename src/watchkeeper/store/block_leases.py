"""Which blocks reads are using, so that a block replaced by a merge or expired by retention is
deleted only once no read that started before still needs its files."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from watchkeeper.store.blocks import BlockMeta


class BlockLeases:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readers: dict[Path, int] = {}
        self._retired: dict[Path, BlockMeta] = {}

    def acquire(self, blocks: Iterable[BlockMeta]) -> list[BlockMeta]:
        taken = list(blocks)
        with self._lock:
            for block in taken:
                self._readers[block.path] = self._readers.get(block.path, 0) + 1
        return taken

    def release(self, blocks: Iterable[BlockMeta]) -> None:
        with self._lock:
            for block in blocks:
                left = self._readers.get(block.path, 0) - 1
                if left > 0:
                    self._readers[block.path] = left
                else:
                    self._readers.pop(block.path, None)

    def retire(self, blocks: Iterable[BlockMeta]) -> None:
        """Mark blocks no longer part of the store; `collect` hands them out once unused."""
        with self._lock:
            for block in blocks:
                self._retired[block.path] = block

    def collect(self) -> list[BlockMeta]:
        """The retired blocks no read is using any more (each handed out once), to delete."""
        with self._lock:
            free = [b for path, b in self._retired.items() if path not in self._readers]
            for block in free:
                del self._retired[block.path]
        return free

    @property
    def retired(self) -> int:
        with self._lock:
            return len(self._retired)
