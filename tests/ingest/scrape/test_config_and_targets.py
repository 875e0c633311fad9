"""scrape_configs read as Prometheus 3.x reads them, and targets made from discovered groups
as its PopulateLabels makes them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.ingest.scrape.config import (
    ScrapeConfigError,
    ScrapeDefaults,
    parse_scrape_configs,
)
from watchkeeper.ingest.scrape.discovery import FileDiscovery, read_groups, static_groups
from watchkeeper.ingest.scrape.targets import Target, TargetError, discovered_labels, populate

DEFAULTS = ScrapeDefaults(scrape_interval_ms=60_000, scrape_timeout_ms=10_000)


def _job(**fields: Any) -> Any:
    return parse_scrape_configs([{"job_name": "node", **fields}], DEFAULTS)[0]


def test_defaults_follow_the_global_section() -> None:
    job = _job()
    assert (job.scrape_interval_ms, job.scrape_timeout_ms) == (60_000, 10_000)
    assert (job.metrics_path, job.scheme, job.honor_labels, job.honor_timestamps) == (
        "/metrics",
        "http",
        False,
        True,
    )
    # an interval under the global timeout brings the timeout down with it
    assert _job(scrape_interval="5s").scrape_timeout_ms == 5_000


def test_accept_header_is_prometheus_default() -> None:
    assert _job().accept_header() == (
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
        "application/openmetrics-text;version=0.0.1;q=0.5,"
        "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
        "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
    )
    assert _job(scrape_protocols=["PrometheusText0.0.4"]).accept_header() == (
        "text/plain;version=0.0.4;q=0.6,*/*;q=0.5"
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"job_name": ""}, "job_name is empty"),
        (
            {"scrape_interval": "5s", "scrape_timeout": "10s"},
            'scrape timeout greater than scrape interval for scrape config with job name "node"',
        ),
        ({"scrape_interval": "5 minutes"}, "scrape_interval: not a valid duration"),
        ({"kubernetes_sd_configs": []}, "kubernetes_sd_configs is not supported"),
        ({"scrape_intervl": "1m"}, "unknown field 'scrape_intervl'"),
        ({"scheme": "ftp"}, 'scheme must be "http" or "https"'),
        ({"scrape_protocols": ["PrometheusProto"]}, "PrometheusProto is not supported"),
        ({"scrape_protocols": ["Text"]}, "unknown scrape protocol Text"),
        (
            {"basic_auth": {"username": "u"}, "authorization": {"credentials": "t"}},
            "at most one of basic_auth and authorization",
        ),
        ({"authorization": {"type": "Basic"}}, 'authorization type cannot be set to "basic"'),
        (
            {"relabel_configs": [{"action": "hashmod", "target_label": "x"}]},
            "relabel_configs: relabel rule 1: relabel configuration for hashmod requires",
        ),
        ({"file_sd_configs": [{"files": []}]}, "must contain at least one path name"),
        ({"file_sd_configs": [{"files": ["x.txt"]}]}, "is not valid for file discovery"),
        ({"body_size_limit": "10 parsecs"}, "body_size_limit: '10 parsecs' is not a size"),
        ({"sample_limit": -1}, "sample_limit must be a whole number"),
    ],
)
def test_refused_with_the_job_and_reason(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ScrapeConfigError, match=re.escape(message)):
        parse_scrape_configs([{"job_name": "node", **fields}], DEFAULTS)


def test_job_names_are_unique() -> None:
    with pytest.raises(ScrapeConfigError, match='multiple scrape configs with job name "a"'):
        parse_scrape_configs([{"job_name": "a"}, {"job_name": "a"}], DEFAULTS)


def test_sizes_are_base_2() -> None:
    assert _job(body_size_limit="10MB").body_size_limit == 10 << 20
    assert _job(body_size_limit="512KiB").body_size_limit == 512 << 10
    assert _job(body_size_limit=100).body_size_limit == 100


def test_relative_paths_are_taken_from_the_config_directory(tmp_path: Path) -> None:
    job = parse_scrape_configs(
        [{"job_name": "a", "file_sd_configs": [{"files": ["sd/*.json"]}]}], DEFAULTS, tmp_path
    )[0]
    assert job.file_sd_configs[0].files == (str(tmp_path / "sd/*.json"),)


def _targets(job: Any) -> list[Target | None]:
    out = []
    for group in static_groups(job.static_configs):
        for target in group.targets:
            out.append(populate(job, discovered_labels(job, target, group.labels)))
    return out


def test_target_labels_url_and_discovered_labels() -> None:
    job = _job(
        scrape_interval="15s",
        params={"module": ["http_2xx", "other"]},
        static_configs=[{"targets": ["example.org:9115"], "labels": {"env": "prod"}}],
    )
    (target,) = _targets(job)
    assert target is not None
    assert target.labels == (("env", "prod"), ("instance", "example.org:9115"), ("job", "node"))
    assert target.url == "http://example.org:9115/metrics?module=http_2xx&module=other"
    assert dict(target.discovered) == {
        "__address__": "example.org:9115",
        "__metrics_path__": "/metrics",
        "__param_module": "http_2xx",
        "__scheme__": "http",
        "__scrape_interval__": "15s",
        "__scrape_timeout__": "10s",
        "env": "prod",
        "job": "node",
    }
    assert (target.interval_ms, target.timeout_ms) == (15_000, 10_000)
    assert 0 <= target.offset_ms() < 15_000


def test_relabelling_moves_the_address_and_the_parameter() -> None:
    """The blackbox exporter pattern from Prometheus' documentation."""
    job = _job(
        metrics_path="/probe",
        params={"module": ["http_2xx"]},
        static_configs=[{"targets": ["https://example.com"]}],
        relabel_configs=[
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
            {"target_label": "__address__", "replacement": "127.0.0.1:9115"},
        ],
    )
    (target,) = _targets(job)
    assert target is not None
    assert target.url == (
        "http://127.0.0.1:9115/probe?module=http_2xx&target=https%3A%2F%2Fexample.com"
    )
    assert dict(target.labels)["instance"] == "https://example.com"


def test_relabelling_sets_interval_and_drops_targets() -> None:
    job = _job(
        static_configs=[{"targets": ["a:1", "b:1"]}],
        relabel_configs=[
            {"source_labels": ["__address__"], "regex": "b:1", "action": "drop"},
            {"target_label": "__scrape_interval__", "replacement": "30s"},
            {"target_label": "__meta_gone", "replacement": "x"},
        ],
    )
    kept, dropped = _targets(job)
    assert dropped is None
    assert kept is not None and kept.interval_ms == 30_000
    assert "__meta_gone" not in dict(kept.labels)


@pytest.mark.parametrize(
    ("relabel", "message"),
    [
        ({"target_label": "__address__", "replacement": ""}, "no address"),
        (
            {"target_label": "__address__", "replacement": "http://x:1"},
            '"http://x:1" is not a valid hostname',
        ),
        (
            {"target_label": "__scrape_timeout__", "replacement": "2m"},
            'scrape timeout cannot be greater than scrape interval ("2m" > "1m")',
        ),
        (
            {"target_label": "__scrape_interval__", "replacement": "0"},
            "scrape interval cannot be 0",
        ),
    ],
)
def test_unscrapable_targets(relabel: dict[str, str], message: str) -> None:
    job = _job(static_configs=[{"targets": ["a:1"]}], relabel_configs=[relabel])
    with pytest.raises(TargetError, match=re.escape(message)):
        _targets(job)


def test_file_sd_groups_and_changes(tmp_path: Path) -> None:
    path = tmp_path / "targets.json"
    path.write_text('[{"targets": ["a:1", "b:1"], "labels": {"env": "prod"}}]')
    job = _job(file_sd_configs=[{"files": [str(tmp_path / "*.json")]}])
    discovery = FileDiscovery(job.file_sd_configs[0])
    assert discovery.refresh(0)
    (group,) = discovery.groups()
    assert dict(group.labels) == {"env": "prod", "__meta_filepath": str(path)}
    assert len(group.targets) == 2
    assert not discovery.refresh(1000)  # nothing changed
    path.write_text("[{not json")
    assert not discovery.refresh(2000)
    assert discovery.groups() == [group]  # a broken file keeps what it gave before
    assert "cannot parse" in discovery.errors[str(path)]
    path.write_text("- targets: [c:1]\n")  # YAML in a .json file is refused
    discovery.refresh(3000)
    assert discovery.groups() == [group]
    path.write_text('[{"targets": ["c:1"]}]')
    assert discovery.refresh(4000)
    assert [t for g in discovery.groups() for t in g.targets] == [(("__address__", "c:1"),)]
    assert discovery.errors == {}
    path.unlink()
    assert discovery.refresh(5000)
    assert discovery.groups() == []


def test_file_sd_yaml_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.yml"
    path.write_text("- targets: ['x:9100']\n  labels: {team: a}\n")
    (group,) = read_groups(path)
    assert group.targets == ((("__address__", "x:9100"),),)
    path.write_text("- targets: ['x:9100']\n  lables: {team: a}\n")
    with pytest.raises(ValueError, match="unknown field 'lables'"):
        read_groups(path)


def test_targets_spread_over_the_interval() -> None:
    """No thundering herd: 200 targets' places in a 15 s interval fill it evenly, and each
    target keeps its place."""
    job = _job(
        scrape_interval="15s",
        static_configs=[{"targets": [f"host-{i}:9100" for i in range(200)]}],
    )
    targets = [t for t in _targets(job) if t is not None]
    offsets = [t.offset_ms() for t in targets]
    per_tenth = [sum(1 for o in offsets if k * 1500 <= o < (k + 1) * 1500) for k in range(10)]
    assert min(per_tenth) >= 8 and max(per_tenth) <= 35, per_tenth
    assert offsets == [t.offset_ms() for t in targets]
