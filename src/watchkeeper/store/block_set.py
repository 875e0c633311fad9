"""The store's blocks on disk as reads and maintenance see them: opened at start (rewriting old
formats), merged as they age (block_merge.py), and, once replaced or expired, deleted when no
read holds them any more (block_leases.py)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from watchkeeper.model import series_key
from watchkeeper.store.block_leases import BlockLeases
from watchkeeper.store.block_merge import (
    merge_ranges,
    merged_histograms,
    merged_parts,
    plan_merge,
)
from watchkeeper.store.blocks import (
    FORMAT_VERSION,
    BlockMeta,
    BlockReader,
    delete_block,
    list_blocks,
    upgrade,
    write_block,
)
from watchkeeper.store.read_cache import ReadCache
from watchkeeper.store.series_index import name_of
from watchkeeper.store.tenant import TenantState
from watchkeeper.store.types import StorageOptions

log = logging.getLogger(__name__)


class BlockSet:
    def __init__(self, options: StorageOptions, cache: ReadCache | None = None) -> None:
        self.reader = BlockReader()
        self._cache = cache  # reads of blocks kept for queries: dropped with the block
        self._leases = BlockLeases()
        longest = options.max_block_duration_ms
        self._merge_ranges = merge_ranges(
            options.block_duration_ms,
            options.retention_ms if longest is None else longest * 10,
        )

    def open(self, tenant_dir: Path) -> list[BlockMeta]:
        """A tenant's blocks when the store opens, oldest first, in the current format."""
        return [b if b.version == FORMAT_VERSION else _upgraded(b) for b in list_blocks(tenant_dir)]

    def hold(self, blocks: Iterable[BlockMeta]) -> None:
        """A read starts using `blocks`: they stay on disk until it lets go."""
        self._leases.acquire(blocks)

    def let_go(self, blocks: Iterable[BlockMeta]) -> None:
        self._leases.release(blocks)

    def retire(self, blocks: Iterable[BlockMeta]) -> None:
        """`blocks` left the store (retention): deleted once no read holds them."""
        self._leases.retire(blocks)

    def merge_aged(self, state: TenantState, state_lock: threading.RLock) -> list[BlockMeta]:
        """Merge the tenant's aged blocks (block_merge.py), each group into one block put in
        its place under `state_lock`; returns the merged blocks. Nothing else changes: the
        head, the WAL and the series are the same."""
        labels = state.labels
        merged: list[BlockMeta] = []
        while (group := plan_merge(state.blocks, self._merge_ranges)) is not None:
            block = write_block(
                state.directory,
                merged_parts(self.reader, group, name_of(labels)),
                lambda sid: series_key(labels[sid]),
                sources=[b.name for b in group],
                histograms=merged_histograms(group),
            )
            if block is None:
                return merged
            merged.append(block)
            with state_lock:
                replaced = {b.path for b in group}
                kept = [b for b in state.blocks if b.path not in replaced]
                state.blocks = sorted([*kept, block], key=lambda b: (b.min_time, b.name))
            self._leases.retire(group)
            log.info(
                "merged %d blocks into %s: %d samples, %d series",
                len(group),
                block.path,
                block.samples,
                block.series,
            )
        return merged

    def delete_unused(self) -> None:
        """Delete the retired blocks no read holds any more."""
        for block in self._leases.collect():
            delete_block(block)
            self.reader.forget(block, self._cache)

    def close(self) -> None:
        self.delete_unused()
        self.reader.close()


def _upgraded(block: BlockMeta) -> BlockMeta:
    log.info("rewriting block %s in block format version %d", block.path, FORMAT_VERSION)
    return upgrade(block)
