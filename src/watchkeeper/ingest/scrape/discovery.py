"""Target discovery: `static_configs`, and `file_sd_configs` files re-read when they change.

A file holds a list of groups, as JSON or YAML: `[{"targets": ["host:9100"], "labels":
{"env": "prod"}}]`; each target found in it carries `__meta_filepath`. File names may use
glob wildcards in their last element. A file that cannot be read or parsed keeps the targets
it gave before (as Prometheus does), and the error is kept for the targets page and the log.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from watchkeeper.ingest.scrape.config import FileSDConfig, StaticConfig
from watchkeeper.ingest.scrape.targets import ADDRESS, TargetGroup
from watchkeeper.model import Labels

FILEPATH_LABEL = "__meta_filepath"


def static_groups(configs: tuple[StaticConfig, ...]) -> list[TargetGroup]:
    return [
        TargetGroup(
            source=f"static_configs[{number}]",
            targets=tuple(((ADDRESS, target),) for target in config.targets),
            labels=config.labels,
        )
        for number, config in enumerate(configs, start=1)
    ]


@dataclass
class _Seen:
    stamp: tuple[int, int]  # mtime_ns, size
    groups: list[TargetGroup]


@dataclass
class FileDiscovery:
    """One `file_sd_configs` entry. `refresh` re-reads a file when its modification time or
    size changed, or when `refresh_interval` has passed, and says whether anything changed."""

    config: FileSDConfig
    errors: dict[str, str] = field(default_factory=dict)
    _files: dict[str, _Seen] = field(default_factory=dict)
    _last_full_ms: float = -1.0

    def groups(self) -> list[TargetGroup]:
        return [group for name in sorted(self._files) for group in self._files[name].groups]

    def refresh(self, now_ms: float) -> bool:
        full = self._last_full_ms < 0 or now_ms - self._last_full_ms >= (
            self.config.refresh_interval_ms
        )
        if full:
            self._last_full_ms = now_ms
        names = sorted({name for pattern in self.config.files for name in glob.glob(pattern)})
        changed = set(self._files) - set(names)
        for gone in changed:
            del self._files[gone]
            self.errors.pop(gone, None)
        for name in names:
            try:
                info = os.stat(name)
            except OSError:
                continue  # removed between glob and stat: the next refresh sees it gone
            stamp = (info.st_mtime_ns, info.st_size)
            seen = self._files.get(name)
            if seen is not None and seen.stamp == stamp and not full:
                continue
            try:
                groups = read_groups(Path(name))
            except (OSError, ValueError) as err:
                self.errors[name] = str(err)
                continue
            self.errors.pop(name, None)
            if seen is None or seen.groups != groups:
                changed.add(name)
            self._files[name] = _Seen(stamp, groups)
        return bool(changed)


def read_groups(path: Path) -> list[TargetGroup]:
    """The target groups of one file; ValueError naming the file and the problem."""
    text = path.read_text(encoding="utf-8")
    try:
        # YAML reads JSON too, but JSON's own parser gives the clearer error
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot parse: {err}") from None
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a list of target groups")
    groups = []
    for number, item in enumerate(raw, start=1):
        groups.append(_group(item, path, number))
    return groups


def _group(item: Any, path: Path, number: int) -> TargetGroup:
    where = f"{path}: group {number}"
    if not isinstance(item, Mapping):
        raise ValueError(f"{where}: expected a mapping with targets and labels")
    unknown = sorted(set(item) - {"targets", "labels"})
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}")
    targets = item.get("targets") or []
    labels = item.get("labels") or {}
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise ValueError(f"{where}: targets must be a list of host:port strings")
    if not isinstance(labels, Mapping):
        raise ValueError(f"{where}: labels must be a mapping")
    pairs: Labels = tuple(
        sorted(
            [(str(k), str(v)) for k, v in labels.items() if v not in (None, "")]
            + [(FILEPATH_LABEL, str(path))]
        )
    )
    return TargetGroup(
        source=str(path),
        targets=tuple(((ADDRESS, target),) for target in targets if target),
        labels=pairs,
    )
