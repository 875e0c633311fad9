"""From discovered target groups to scrape targets, as Prometheus' PopulateLabels does it.

A discovered target starts with its group's labels, its own `__address__`, and the job's
`job`, `__scheme__`, `__metrics_path__`, `__scrape_interval__`, `__scrape_timeout__` and
`__param_<name>` labels (each only where discovery did not set it). `relabel_configs` then run;
a target they drop is listed as dropped. `__meta_*` labels go after relabelling, `instance`
defaults to `__address__`, and the target's own labels are the rest without a `__` prefix. The
`__` labels left decide the URL and the interval, so relabelling can change them per target.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import xxhash

from watchkeeper.ingest.relabel import LabelBuilder
from watchkeeper.ingest.scrape.config import ScrapeConfig
from watchkeeper.model import Labels, format_duration, parse_duration

ADDRESS = "__address__"
SCHEME = "__scheme__"
METRICS_PATH = "__metrics_path__"
SCRAPE_INTERVAL = "__scrape_interval__"
SCRAPE_TIMEOUT = "__scrape_timeout__"
PARAM_PREFIX = "__param_"
META_PREFIX = "__meta_"
RESERVED_PREFIX = "__"


class TargetError(ValueError):
    """A discovered target that cannot be scraped; the message says why."""


@dataclass(frozen=True)
class TargetGroup:
    """What discovery found: targets (each a label set holding `__address__`) sharing labels,
    and where it found them (`source`, for messages)."""

    source: str
    targets: tuple[Labels, ...]
    labels: Labels = ()


@dataclass(frozen=True)
class Target:
    job: str
    labels: Labels  # the target's labels, as every series it yields carries them
    discovered: Labels  # before relabelling, as /api/v1/targets shows them
    url: str
    interval_ms: int
    timeout_ms: int

    @property
    def identity(self) -> tuple[str, Labels, str]:
        return (self.job, self.labels, self.url)

    def offset_ms(self, seed: int = 0) -> int:
        """Where in each interval this target is scraped: a hash of the target, so that
        targets spread over the interval and each keeps its place across restarts."""
        digest = xxhash.xxh64_intdigest(repr(self.identity).encode(), seed=seed)
        return digest % self.interval_ms


@dataclass(frozen=True)
class DroppedTarget:
    job: str
    discovered: Labels


def discovered_labels(config: ScrapeConfig, target: Labels, group: Labels) -> Labels:
    """The label set a target enters relabelling with."""
    builder = dict(group)
    builder.update(target)
    defaults = (
        ("job", config.job_name),
        (SCRAPE_INTERVAL, format_duration(config.scrape_interval_ms)),
        (SCRAPE_TIMEOUT, format_duration(config.scrape_timeout_ms)),
        (METRICS_PATH, config.metrics_path),
        (SCHEME, config.scheme),
    )
    for name, value in defaults:
        if not builder.get(name):
            builder[name] = value
    for name, values in config.params:
        label = PARAM_PREFIX + name
        if values and not builder.get(label):
            builder[label] = values[0]
    return tuple(sorted((n, v) for n, v in builder.items() if v != ""))


def populate(config: ScrapeConfig, discovered: Labels) -> Target | None:
    """The target `discovered` becomes, or None where relabelling drops it. Raises
    TargetError for a target that cannot be scraped."""
    builder = LabelBuilder(discovered)
    for rule in config.relabel_configs:
        if not rule.apply(builder):
            return None
    labels = dict(builder.labels())
    address = labels.get(ADDRESS, "")
    if not address:
        raise TargetError("no address")
    if "/" in address:
        raise TargetError(f'"{address}" is not a valid hostname')
    interval = _duration(labels, SCRAPE_INTERVAL, "interval")
    timeout = _duration(labels, SCRAPE_TIMEOUT, "timeout")
    if timeout > interval:
        raise TargetError(
            f'scrape timeout cannot be greater than scrape interval ("{labels[SCRAPE_TIMEOUT]}" '
            f'> "{labels[SCRAPE_INTERVAL]}")'
        )
    for name in [n for n in labels if n.startswith(META_PREFIX)]:
        del labels[name]
    if not labels.get("instance"):
        labels["instance"] = address
    public = tuple(sorted((n, v) for n, v in labels.items() if not n.startswith(RESERVED_PREFIX)))
    return Target(
        job=config.job_name,
        labels=public,
        discovered=discovered,
        url=_url(config, labels),
        interval_ms=interval,
        timeout_ms=timeout,
    )


def _duration(labels: dict[str, str], name: str, what: str) -> int:
    text = labels.get(name, "")
    try:
        value = parse_duration(text)
    except ValueError as err:
        raise TargetError(f"error parsing scrape {what}: {err}") from None
    if value == 0:
        raise TargetError(f"scrape {what} cannot be 0")
    return value


def _url(config: ScrapeConfig, labels: dict[str, str]) -> str:
    params: dict[str, list[str]] = {name: list(values) for name, values in config.params}
    for name, value in labels.items():
        if name.startswith(PARAM_PREFIX):
            key = name[len(PARAM_PREFIX) :]
            # a relabelled __param_ replaces the first value, as Prometheus does
            params[key] = [value, *params.get(key, [])[1:]]
    path = labels.get(METRICS_PATH, "/metrics") or "/"
    if not path.startswith("/"):
        path = "/" + path
    query = urlencode([(k, v) for k, vs in params.items() for v in vs])
    scheme = labels.get(SCHEME, config.scheme)
    return f"{scheme}://{labels[ADDRESS]}{path}" + (f"?{query}" if query else "")
