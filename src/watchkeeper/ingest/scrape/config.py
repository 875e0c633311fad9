"""`scrape_configs` in Prometheus' format, read and checked as Prometheus 3.x reads them.

A user's prometheus.yml `scrape_configs` section pastes into watchkeeper's config unchanged.
Service discovery other than `static_configs` and `file_sd_configs` is refused by name rather
than ignored, and so is any key Prometheus does not know.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchkeeper.ingest.relabel import RelabelError, RelabelRule, parse_rules
from watchkeeper.model import NameValidation, parse_duration

# Prometheus' scrape protocols; the protobuf one (PrometheusProto) is not read yet
PROTOCOLS = {
    "OpenMetricsText1.0.0": "application/openmetrics-text;version=1.0.0",
    "OpenMetricsText0.0.1": "application/openmetrics-text;version=0.0.1",
    "PrometheusText1.0.0": "text/plain;version=1.0.0",
    "PrometheusText0.0.4": "text/plain;version=0.0.4",
}
DEFAULT_PROTOCOLS = (
    "OpenMetricsText1.0.0",
    "OpenMetricsText0.0.1",
    "PrometheusText1.0.0",
    "PrometheusText0.0.4",
)
DEFAULT_FILE_SD_REFRESH_MS = 5 * 60 * 1000
_UNSUPPORTED_DISCOVERY = {
    "azure_sd_configs",
    "consul_sd_configs",
    "digitalocean_sd_configs",
    "docker_sd_configs",
    "dockerswarm_sd_configs",
    "dns_sd_configs",
    "ec2_sd_configs",
    "eureka_sd_configs",
    "gce_sd_configs",
    "hetzner_sd_configs",
    "http_sd_configs",
    "ionos_sd_configs",
    "kubernetes_sd_configs",
    "kuma_sd_configs",
    "lightsail_sd_configs",
    "linode_sd_configs",
    "marathon_sd_configs",
    "nerve_sd_configs",
    "nomad_sd_configs",
    "openstack_sd_configs",
    "ovhcloud_sd_configs",
    "puppetdb_sd_configs",
    "scaleway_sd_configs",
    "serverset_sd_configs",
    "triton_sd_configs",
    "uyuni_sd_configs",
    "vultr_sd_configs",
    "stackit_sd_configs",
    ").split(",
}
_FIELDS = {
    "job_name",
    "scrape_interval",
    "scrape_timeout",
    "metrics_path",
    "scheme",
    "params",
    "basic_auth",
    "authorization",
    "tls_config",
    "honor_labels",
    "honor_timestamps",
    "track_timestamps_staleness",
    "sample_limit",
    "label_limit",
    "label_name_length_limit",
    "label_value_length_limit",
    "body_size_limit",
    "relabel_configs",
    "metric_relabel_configs",
    "static_configs",
    "file_sd_configs",
    "scrape_protocols",
    "fallback_scrape_protocol",
    "enable_compression",
    "follow_redirects",
    "metric_name_validation_scheme",
}
_SIZE = re.compile(r"(\d+)\s*([KMGTPE]i?B|B)?")
_SIZE_UNITS = {"B": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}


class ScrapeConfigError(ValueError):
    """A scrape configuration that cannot be used; the message names the job and the key."""


@dataclass(frozen=True)
class TLSConfig:
    ca_file: str = ""
    ca: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class Credentials:
    """basic_auth (username and password) or authorization (type and credentials); secrets
    from files are read at each scrape, so a rotated file takes effect without a reload."""

    username: str = ""
    password: str = ""
    password_file: str = ""
    type: str = ""
    credentials: str = ""
    credentials_file: str = ""

    def header(self) -> str:
        """The Authorization header value; "" for none."""
        if self.username or self.password or self.password_file:
            password = _read_secret(self.password_file) if self.password_file else self.password
            token = base64.b64encode(f"{self.username}:{password}".encode()).decode()
            return f"Basic {token}"
        if self.type:
            secret = (
                _read_secret(self.credentials_file) if self.credentials_file else self.credentials
            )
            return f"{self.type} {secret}"
        return ""


@dataclass(frozen=True)
class StaticConfig:
    targets: tuple[str, ...]
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class FileSDConfig:
    files: tuple[str, ...]
    refresh_interval_ms: int = DEFAULT_FILE_SD_REFRESH_MS


@dataclass(frozen=True)
class ScrapeConfig:
    job_name: str
    scrape_interval_ms: int
    scrape_timeout_ms: int
    metrics_path: str = "/metrics"
    scheme: str = "http"
    params: tuple[tuple[str, tuple[str, ...]], ...] = ()
    credentials: Credentials = field(default_factory=Credentials)
    tls: TLSConfig = field(default_factory=TLSConfig)
    honor_labels: bool = False
    honor_timestamps: bool = True
    track_timestamps_staleness: bool = False
    sample_limit: int = 0
    label_limit: int = 0
    label_name_length_limit: int = 0
    label_value_length_limit: int = 0
    body_size_limit: int = 0
    relabel_configs: tuple[RelabelRule, ...] = ()
    metric_relabel_configs: tuple[RelabelRule, ...] = ()
    static_configs: tuple[StaticConfig, ...] = ()
    file_sd_configs: tuple[FileSDConfig, ...] = ()
    scrape_protocols: tuple[str, ...] = DEFAULT_PROTOCOLS
    fallback_scrape_protocol: str = ""
    enable_compression: bool = True
    follow_redirects: bool = True
    name_validation: NameValidation = NameValidation.UTF8

    def accept_header(self) -> str:
        """Prometheus' Accept header: the protocols in order of preference, weighted down
        from 0.6 (one more than the protocols Prometheus knows), then anything; the 1.0.0
        formats say how names outside the legacy character set are to be written."""
        escaping = "allow-utf-8" if self.name_validation is NameValidation.UTF8 else "underscores"
        weight = len(PROTOCOLS) + 2  # Prometheus counts its protobuf protocol too
        parts = []
        for protocol in self.scrape_protocols:
            media = PROTOCOLS[protocol]
            if protocol.endswith("1.0.0"):
                media += f";escaping={escaping}"
            parts.append(f"{media};q=0.{weight}")
            weight -= 1
        parts.append(f"*/*;q=0.{weight}")
        return ",".join(parts)


@dataclass(frozen=True)
class ScrapeDefaults:
    """The `global` section's share in every job: Prometheus' global scrape settings."""

    scrape_interval_ms: int = 60_000
    scrape_timeout_ms: int = 10_000
    name_validation: NameValidation = NameValidation.UTF8


def parse_scrape_configs(
    raw: Sequence[Any] | None, defaults: ScrapeDefaults, base_dir: Path | None = None
) -> list[ScrapeConfig]:
    """Every job of a `scrape_configs` list, checked; job names must be unique. Relative
    file paths (file_sd, TLS and secret files) are taken relative to `base_dir`."""
    jobs: list[ScrapeConfig] = []
    seen: set[str] = set()
    for number, item in enumerate(raw or (), start=1):
        where = f"scrape_configs[{number}]"
        if not isinstance(item, Mapping):
            raise ScrapeConfigError(f"{where}: expected a mapping, got {item!r}")
        name = item.get("job_name")
        if name:
            where = f'{where} (job "{name}")'
        try:
            job = _parse_job(item, defaults, base_dir)
        except (ScrapeConfigError, RelabelError) as err:
            raise ScrapeConfigError(f"{where}: {err}") from None
        if job.job_name in seen:
            raise ScrapeConfigError(f'found multiple scrape configs with job name "{job.job_name}"')
        seen.add(job.job_name)
        jobs.append(job)
    return jobs


def _parse_job(raw: Mapping[str, Any], defaults: ScrapeDefaults, base: Path | None) -> ScrapeConfig:
    for key in raw:
        if key in _UNSUPPORTED_DISCOVERY:
            raise ScrapeConfigError(
                f"{key} is not supported; use static_configs or file_sd_configs (a file "
                "written by another tool works with any discovery)"
            )
        if key not in _FIELDS:
            raise ScrapeConfigError(f"unknown field {key!r}")
    name = raw.get("job_name")
    if not isinstance(name, str) or not name:
        raise ScrapeConfigError("job_name is empty")
    interval = _duration(raw, "scrape_interval", defaults.scrape_interval_ms)
    timeout_default = min(defaults.scrape_timeout_ms, interval)
    timeout = _duration(raw, "scrape_timeout", timeout_default)
    if interval <= 0:
        raise ScrapeConfigError("scrape_interval must be more than 0")
    if timeout <= 0:
        raise ScrapeConfigError("scrape_timeout must be more than 0")
    if timeout > interval:
        raise ScrapeConfigError(
            f'scrape timeout greater than scrape interval for scrape config with job name "{name}"'
        )
    scheme = _text(raw, "scheme", "http")
    if scheme not in ("http", "https"):
        raise ScrapeConfigError(f'scheme must be "http" or "https", not "{scheme}"')
    path = _text(raw, "metrics_path", "/metrics")
    validation = NameValidation(
        _text(raw, "metric_name_validation_scheme", defaults.name_validation.value)
    )
    protocols = tuple(raw.get("scrape_protocols") or DEFAULT_PROTOCOLS)
    for protocol in protocols:
        if protocol == "PrometheusProto":
            raise ScrapeConfigError(
                "scrape_protocols: PrometheusProto is not supported (the protobuf exposition "
                "format is not read yet); use the text protocols"
            )
        if protocol not in PROTOCOLS:
            raise ScrapeConfigError(
                f"scrape_protocols: unknown scrape protocol {protocol}, supported: "
                + ", ".join(PROTOCOLS)
            )
    if len(set(protocols)) != len(protocols):
        raise ScrapeConfigError(f"scrape_protocols: duplicated protocol in the list: {protocols}")
    fallback = _text(raw, "fallback_scrape_protocol", "")
    if fallback and fallback not in PROTOCOLS:
        raise ScrapeConfigError(f"fallback_scrape_protocol: unknown scrape protocol {fallback}")
    return ScrapeConfig(
        job_name=name,
        scrape_interval_ms=interval,
        scrape_timeout_ms=timeout,
        metrics_path=path,
        scheme=scheme,
        params=_params(raw.get("params")),
        credentials=_credentials(raw, base),
        tls=_tls(raw.get("tls_config"), base),
        honor_labels=_flag(raw, "honor_labels", False),
        honor_timestamps=_flag(raw, "honor_timestamps", True),
        track_timestamps_staleness=_flag(raw, "track_timestamps_staleness", False),
        sample_limit=_count(raw, "sample_limit"),
        label_limit=_count(raw, "label_limit"),
        label_name_length_limit=_count(raw, "label_name_length_limit"),
        label_value_length_limit=_count(raw, "label_value_length_limit"),
        body_size_limit=_size(raw.get("body_size_limit")),
        relabel_configs=_rules(raw, "relabel_configs", validation),
        metric_relabel_configs=_rules(raw, "metric_relabel_configs", validation),
        static_configs=tuple(_static(item) for item in _list(raw, "static_configs")),
        file_sd_configs=tuple(_file_sd(item, base) for item in _list(raw, "file_sd_configs")),
        scrape_protocols=protocols,
        fallback_scrape_protocol=fallback,
        enable_compression=_flag(raw, "enable_compression", True),
        follow_redirects=_flag(raw, "follow_redirects", True),
        name_validation=validation,
    )


def _duration(raw: Mapping[str, Any], key: str, default: int) -> int:
    value = raw.get(key)
    if value is None:
        return default
    try:
        return parse_duration(str(value))
    except ValueError as err:
        raise ScrapeConfigError(f"{key}: {err}") from None


def _text(raw: Mapping[str, Any], key: str, default: str) -> str:
    value = raw.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ScrapeConfigError(f"{key} must be a string, not {value!r}")
    return value


def _flag(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ScrapeConfigError(f"{key} must be true or false, not {value!r}")
    return value


def _count(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ScrapeConfigError(f"{key} must be a whole number, 0 for no limit, not {value!r}")
    return value


def _size(value: Any) -> int:
    """A size such as 10MB or 512KiB (base 2, as Prometheus reads body_size_limit)."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    found = _SIZE.fullmatch(str(value).strip())
    if found is None:
        raise ScrapeConfigError(
            f"body_size_limit: {value!r} is not a size (examples: 10MB, 512KiB, 0 for none)"
        )
    unit = found.group(2) or "B"
    return int(found.group(1)) << _SIZE_UNITS[unit[0]]


def _list(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        raise ScrapeConfigError(f"{key} must be a list")
    return value


def _params(value: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not value:
        return ()
    if not isinstance(value, Mapping):
        raise ScrapeConfigError("params must map parameter names to lists of values")
    out = []
    for name, values in value.items():
        if isinstance(values, str) or not isinstance(values, list):
            raise ScrapeConfigError(f"params: {name} must be a list of values")
        out.append((str(name), tuple(str(v) for v in values)))
    return tuple(out)


def _credentials(raw: Mapping[str, Any], base: Path | None) -> Credentials:
    basic, authorization = raw.get("basic_auth"), raw.get("authorization")
    if basic and authorization:
        raise ScrapeConfigError("at most one of basic_auth and authorization may be configured")
    if basic:
        _only(basic, {"username", "password", "password_file"}, "basic_auth")
        if basic.get("password") and basic.get("password_file"):
            raise ScrapeConfigError(
                "at most one of basic_auth password & password_file must be configured"
            )
        return Credentials(
            username=str(basic.get("username") or ""),
            password=str(basic.get("password") or ""),
            password_file=_path(basic.get("password_file"), base),
        )
    if authorization:
        _only(authorization, {"type", "credentials", "credentials_file"}, "authorization")
        kind = str(authorization.get("type") or "Bearer")
        if kind.lower() == "basic":
            raise ScrapeConfigError(
                'authorization type cannot be set to "basic", use "basic_auth" instead'
            )
        if authorization.get("credentials") and authorization.get("credentials_file"):
            raise ScrapeConfigError(
                "at most one of authorization credentials & credentials_file must be configured"
            )
        return Credentials(
            type=kind,
            credentials=str(authorization.get("credentials") or ""),
            credentials_file=_path(authorization.get("credentials_file"), base),
        )
    return Credentials()


def _tls(raw: Any, base: Path | None) -> TLSConfig:
    if not raw:
        return TLSConfig()
    _only(
        raw,
        {"ca_file", "ca", "cert_file", "key_file", "server_name", "insecure_skip_verify"},
        "tls_config",
    )
    if bool(raw.get("cert_file")) != bool(raw.get("key_file")):
        raise ScrapeConfigError("tls_config: cert_file and key_file must be configured together")
    return TLSConfig(
        ca_file=_path(raw.get("ca_file"), base),
        ca=str(raw.get("ca") or ""),
        cert_file=_path(raw.get("cert_file"), base),
        key_file=_path(raw.get("key_file"), base),
        server_name=str(raw.get("server_name") or ""),
        insecure_skip_verify=bool(raw.get("insecure_skip_verify", False)),
    )


def _rules(raw: Mapping[str, Any], key: str, scheme: NameValidation) -> tuple[RelabelRule, ...]:
    try:
        return tuple(parse_rules(_list(raw, key), scheme))
    except RelabelError as err:
        raise ScrapeConfigError(f"{key}: {err}") from None


def _static(raw: Any) -> StaticConfig:
    if not isinstance(raw, Mapping):
        raise ScrapeConfigError("static_configs: each entry must be a mapping")
    _only(raw, {"targets", "labels"}, "static_configs")
    targets = raw.get("targets") or []
    labels = raw.get("labels") or {}
    if not isinstance(targets, list) or not isinstance(labels, Mapping):
        raise ScrapeConfigError("static_configs: targets must be a list and labels a mapping")
    return StaticConfig(
        targets=tuple(str(t) for t in targets),
        labels=tuple((str(k), "" if v is None else str(v)) for k, v in labels.items()),
    )


def _file_sd(raw: Any, base: Path | None) -> FileSDConfig:
    if not isinstance(raw, Mapping):
        raise ScrapeConfigError("file_sd_configs: each entry must be a mapping")
    _only(raw, {"files", "refresh_interval"}, "file_sd_configs")
    files = raw.get("files") or []
    if not isinstance(files, list) or not files:
        raise ScrapeConfigError(
            "file_sd_configs: file service discovery config must contain at least one path name"
        )
    for name in files:
        if not re.search(r"\.(json|ya?ml)$", Path(str(name)).name.replace("*", "x")):
            raise ScrapeConfigError(
                f"file_sd_configs: path name {name!r} is not valid for file "
                "discovery (it must end in .json, .yml or .yaml)"
            )
    return FileSDConfig(
        files=tuple(_path(name, base) for name in files),
        refresh_interval_ms=_duration(raw, "refresh_interval", DEFAULT_FILE_SD_REFRESH_MS),
    )


def _only(raw: Any, allowed: set[str], section: str) -> None:
    if not isinstance(raw, Mapping):
        raise ScrapeConfigError(f"{section} must be a mapping")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ScrapeConfigError(f"{section}: unknown field {unknown[0]!r}")


def _path(value: Any, base: Path | None) -> str:
    if not value:
        return ""
    path = Path(str(value))
    return str(base / path if base is not None and not path.is_absolute() else path)


def _read_secret(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as err:
        raise ScrapeConfigError(f"cannot read secret file {path}: {err.strerror}") from None
