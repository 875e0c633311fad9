"""Prometheus scraping: `scrape_configs` (config.py), discovery (static and file_sd), target
labels (targets.py), one loop per target fetching and parsing the exposition (loop.py,
series.py, with ingest.exposition), and the manager that runs the jobs and reloads them."""

from watchkeeper.ingest.scrape.config import (
    ScrapeConfig,
    ScrapeConfigError,
    ScrapeDefaults,
    parse_scrape_configs,
)
from watchkeeper.ingest.scrape.loop import ScrapeLoop, TargetHealth
from watchkeeper.ingest.scrape.manager import ActiveTarget, PoolStatus, ScrapeManager
from watchkeeper.ingest.scrape.series import ScrapeLimits
from watchkeeper.ingest.scrape.targets import DroppedTarget, Target

__all__ = [
    "ActiveTarget",
    "DroppedTarget",
    "PoolStatus",
    "ScrapeConfig",
    "ScrapeConfigError",
    "ScrapeDefaults",
    "ScrapeLimits",
    "ScrapeLoop",
    "ScrapeManager",
    "Target",
    "TargetHealth",
    "parse_scrape_configs",
]
