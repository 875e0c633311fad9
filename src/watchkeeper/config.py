"""The one configuration file (YAML), its defaults, and `WATCHKEEPER_...` environment overrides.

Every setting has a default that makes `watchkeeper serve` useful with no file at all. An
environment variable overrides a key by its path in upper case joined with double underscores:
`WATCHKEEPER_STORAGE__RETENTION=30d`, `WATCHKEEPER_LIMITS__MAX_SAMPLES_PER_REQUEST=50000`.
Values given in the environment are parsed as YAML scalars, so `false`, `10` and `2h` work.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from watchkeeper.model import NameValidation, parse_duration

if TYPE_CHECKING:
    from watchkeeper.ingest.scrape import ScrapeConfig

ENV_PREFIX = "WATCHKEEPER_"


def _duration_ms(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    return value


DurationMs = Annotated[int, BeforeValidator(_duration_ms), Field(ge=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class StorageConfig(_Section):
    retention: DurationMs = Field(
        parse_duration("15d"),
        description="How long samples are kept; whole blocks older than this are deleted.",
    )
    block_duration: DurationMs = Field(
        parse_duration("2h"),
        description="Time span of one on-disk block. The in-memory head is cut into a block "
        "once it spans 1.5 times this.",
    )
    max_block_duration: DurationMs | None = Field(
        None,
        description="Longest block that merging aged blocks makes (Prometheus' "
        "--storage.tsdb.max-block-duration). Blocks are merged in aligned windows of 3, 9, 27... "
        "block durations. Unset: a tenth of the retention, at most 31d. Equal to "
        "block_duration: no merging.",
    )
    out_of_order_time_window: DurationMs = Field(
        0,
        description="How far behind a series' newest sample a sample may arrive and still be "
        "stored (Prometheus' out_of_order_time_window). 0 rejects out-of-order samples.",
    )
    wal_segment_bytes: int = Field(
        64 * 1024 * 1024, ge=1024 * 1024, description="Size at which a WAL segment file is closed."
    )
    max_exemplars: int = Field(
        100_000,
        ge=0,
        description="Exemplars kept per tenant (the newest; Prometheus' "
        "--storage.tsdb.max-exemplars); 0 keeps none.",
    )
    read_cache_bytes: int = Field(
        64 * 1024 * 1024,
        ge=0,
        description="Memory for samples queries decoded (from the compressed in-memory head "
        "and from blocks), kept for the queries that read them again: dashboards re-read the "
        "same series over the same hours on every refresh. Least recently used first out; a "
        "piece over an eighth of this is not kept, nor anything a read decodes whose samples "
        "would not all fit (24 bytes a sample: a scan, which would push out its own first "
        "pieces before it ended). 0 keeps none.",
    )
    recent_samples_per_series: int = Field(
        160,
        ge=0,
        description="The newest float samples of each series kept apart in memory, so that "
        "range selectors over the last minutes or hour (dashboards, rules) read them without "
        "decoding the head: 160 covers a 1h range query of [10m] windows at a 30s scrape "
        "interval (140 samples). 0 keeps none.",
    )
    recent_samples_bytes: int = Field(
        64 * 1024 * 1024,
        ge=0,
        description="Memory for those samples, 16 bytes each (2.5 KiB a series at 160): 64 MiB "
        "holds 26,214 series, given to series as they first get samples; series beyond it are "
        "read from the head as before. 0 keeps none.",
    )
    compaction_check_interval: DurationMs = Field(
        parse_duration("30s"), description="How often the head is checked for cutting blocks."
    )

    @field_validator("block_duration")
    @classmethod
    def _positive_block(cls, value: int) -> int:
        if value < 60_000:
            raise ValueError("must be at least 1m")
        return value


class LimitsConfig(_Section):
    max_request_body_bytes: int = Field(
        32 * 1024 * 1024, ge=1, description="Largest accepted request body, as sent (compressed)."
    )
    max_decompressed_body_bytes: int = Field(
        128 * 1024 * 1024, ge=1, description="Largest accepted request body after decompression."
    )
    max_samples_per_request: int = Field(
        1_000_000, ge=1, description="Most samples one write request may carry."
    )
    max_series_per_tenant: int = Field(
        2_000_000,
        ge=1,
        description="Most series one tenant may hold (every series with samples "
        "within retention); samples of further new series are refused.",
    )
    max_labels_per_series: int = Field(64, ge=1, description="Most labels one series may carry.")
    max_label_name_length: int = Field(1024, ge=1, description="Longest label name, in bytes.")
    max_label_value_length: int = Field(4096, ge=1, description="Longest label value, in bytes.")


class IngestConfig(_Section):
    series_cache_size: int = Field(
        1_000_000,
        ge=0,
        description="Series whose wire encoding the remote_write decoder remembers, so a series "
        "seen before skips label checks (about 150 bytes each; emptied when full; 0 disables).",
    )


class QueryConfig(_Section):
    timeout: DurationMs = Field(
        parse_duration("2m"),
        description="Longest a query may take, time waiting for a slot included (Prometheus' "
        "--query.timeout). A request's `timeout` parameter can only shorten it.",
    )
    max_samples: int = Field(
        50_000_000,
        ge=1,
        description="Most samples one query may hold in memory at once (Prometheus' "
        "--query.max-samples); a query over it fails with a 422 naming this key.",
    )
    max_series_per_selector: int = Field(
        1_000_000,
        ge=1,
        description="Most series one selector of a query may select; a query over it fails "
        "with a 422 naming this key.",
    )
    max_concurrent: int = Field(
        20,
        ge=1,
        description="Queries evaluated at the same time (Prometheus' --query.max-concurrency); "
        "further queries wait for a slot, and the wait counts toward their timeout.",
    )
    lookback_delta: DurationMs = Field(
        parse_duration("5m"),
        description="How far back a selector looks for a series' latest sample (Prometheus' "
        "--query.lookback-delta). A request's `lookback_delta` parameter overrides it.",
    )
    batch_samples: int = Field(
        500_000,
        ge=0,
        description="A selector whose series a query works on one by one (inside a function "
        "such as rate(), or on its own) is read and evaluated in batches of whole series of "
        "about this many samples, so a long query over many series holds a batch, not every "
        "sample: a 24 h histogram_quantile over 5,000 bucket series peaks at 28 MiB instead of "
        "610 MiB. 0 reads every selector whole.",
    )
    inline_below: DurationMs = Field(
        parse_duration("2ms"),
        description="A query that took less than this to evaluate and write the last time it "
        "was asked (the same text, and for a range query the same length and step) runs on "
        "the server's event loop instead of a query thread, saving the 0.07-0.1 ms of handing "
        "it over and back: dashboards ask the same small queries again and again. Longer "
        "queries, and any query while all query.max_concurrent slots are taken, run on query "
        "threads. 0 runs every query on a query thread.",
    )
    default_subquery_step: DurationMs = Field(
        parse_duration("1m"),
        description="Resolution of a subquery written without a step, as in `x[1h:]` "
        "(Prometheus uses its global evaluation_interval, 1m by default).",
    )

    @field_validator("timeout", "lookback_delta", "default_subquery_step")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be more than 0")
        return value


Role = Literal["viewer", "editor", "admin"]


class TokenConfig(_Section):
    name: str = Field(description="Who holds the token; written to the audit log.")
    sha256: str = Field(
        description="Hex SHA-256 of the token (`watchkeeper token create` prints one); the "
        "token itself is never stored."
    )
    role: Role = Field(
        "viewer", description="viewer reads; editor also writes; admin also administers."
    )
    tenant: str = Field("default", description="Tenant used when no X-Scope-OrgID is sent.")
    tenants: list[str] = Field(
        default_factory=list,
        description='Other tenants this token may select with X-Scope-OrgID; ["*"] for any.',
    )

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        value = value.lower()
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise ValueError("must be the 64 hex digits of a SHA-256 digest")
        return value


class AuthConfig(_Section):
    tokens: list[TokenConfig] = Field(
        default_factory=list,
        description="API tokens. With none, auth is off, which is allowed only on loopback.",
    )


class SelfMonitoringConfig(_Section):
    enabled: bool = Field(
        True, description="Store watchkeeper's own metrics so they can be queried like any other."
    )
    interval: DurationMs = Field(parse_duration("15s"), description="How often they are stored.")
    tenant: str = Field("default", description="Tenant that receives them.")


class ScrapeSection(_Section):
    interval: DurationMs = Field(
        parse_duration("1m"),
        description="scrape_interval of jobs that set none (Prometheus' global.scrape_interval).",
    )
    timeout: DurationMs | None = Field(
        None,
        description="scrape_timeout of jobs that set none (global.scrape_timeout). Unset: "
        "10s, or the interval if that is shorter.",
    )
    tenant: str = Field("default", description="Tenant that scraped samples are stored under.")
    workers: int = Field(
        4,
        ge=1,
        description="Threads that parse and store scraped bodies; scrapes beyond wait their "
        "turn, so memory does not grow with the number of targets scraped at the same moment.",
    )

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> ScrapeSection:
        if self.interval <= 0:
            raise ValueError("interval must be more than 0")
        if self.timeout is not None and self.timeout > self.interval:
            raise ValueError("global scrape timeout greater than scrape interval")
        return self

    def effective_timeout(self) -> int:
        default = parse_duration("10s")
        return self.timeout if self.timeout is not None else min(default, self.interval)


class OtlpSection(_Section):
    grpc_listen: str = Field(
        "127.0.0.1:4317",
        description="HOST:PORT of the OTLP/gRPC receiver (4317 is OTLP's port); empty: no gRPC "
        "receiver. OTLP/HTTP is served on the main port at /v1/metrics.",
    )
    max_delta_streams: int = Field(
        1_000_000,
        ge=1,
        description="Delta-temporality streams whose running totals are kept (turning deltas "
        "into the cumulative counters PromQL expects); beyond it, the least recently seen go.",
    )
    delta_stream_idle: DurationMs = Field(
        parse_duration("1h"),
        description="A delta stream not seen for this long is forgotten: its next point starts "
        "a new total, which rate() reads as a counter reset.",
    )
    exponential_histograms: Literal["native", "classic"] = Field(
        "native",
        description="How exponential histograms are stored: native histograms (as Prometheus "
        "3 stores them; scales above 8 are reduced to 8), or classic _bucket series (the "
        "only form before native histograms were stored), downscaled to "
        "otlp.exponential_histogram_max_scale.",
    )
    exponential_histogram_max_scale: int = Field(
        0,
        ge=-10,
        le=20,
        description="With otlp.exponential_histograms: classic, the scale classic buckets are "
        "made at most: 0 gives bucket bounds at powers of 2, 3 at powers of 2^(1/8).",
    )

    @field_validator("grpc_listen")
    @classmethod
    def _host_port_or_empty(cls, value: str) -> str:
        if value:
            host, sep, port = value.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
                raise ValueError("must be HOST:PORT, for example 127.0.0.1:4317, or empty")
        return value


class RulesSection(_Section):
    evaluation_interval: DurationMs = Field(
        parse_duration("1m"),
        description="How often rule groups that set no interval are evaluated (Prometheus' "
        "global.evaluation_interval).",
    )
    tenant: str = Field("default", description="Tenant whose data rules read and write.")
    workers: int = Field(
        2,
        ge=1,
        description="Threads that evaluate rule groups (their own, apart from ingest's); a group "
        "due while all are busy waits its turn.",
    )
    evaluate_on_arrival: bool = Field(
        True,
        description="Also evaluate an alerting rule of the form `selector op number` (such as "
        "`up == 0` or `disk_free_bytes < 1e9`) as soon as an arriving sample changes its "
        "answer, instead of only at its group's next turn: alerts fire and resolve within "
        "milliseconds. false: rules are evaluated only on their turns, exactly as Prometheus "
        "does.",
    )
    external_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels templates see as $externalLabels (global.external_labels).",
    )
    external_url: str = Field(
        "", description="What templates see as $externalURL and externalURL (--web.external-url)."
    )
    for_outage_tolerance: DurationMs = Field(
        parse_duration("1h"),
        description="At start, how far back an alert's pending time is looked for to restore it "
        "(Prometheus' --rules.alert.for-outage-tolerance).",
    )
    for_grace_period: DurationMs = Field(
        parse_duration("10m"),
        description="At start, the least an alert with `for` waits before firing again "
        "(--rules.alert.for-grace-period).",
    )

    @field_validator("evaluation_interval")
    @classmethod
    def _positive_interval(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be more than 0")
        return value


class TenantAlertingSection(_Section):
    alertmanager_config: str = Field(
        description="The tenant's Alertmanager configuration file, relative to this file."
    )
    escalation_policies: list[dict[str, Any]] = Field(
        default_factory=list,
        description="As alerting.escalation_policies, for this tenant's receivers.",
    )
    receiver_active_time_intervals: dict[str, list[str]] = Field(
        default_factory=dict,
        description="As alerting.receiver_active_time_intervals, for this tenant's receivers.",
    )


class AlertingSection(_Section):
    alertmanager_config: str = Field(
        "",
        description="An Alertmanager configuration file (route, receivers, inhibit_rules, "
        "time_intervals), relative to this file. Empty: alerts are kept and shown by the "
        "Alertmanager API but go to no receiver. Reloaded on SIGHUP and POST /-/reload.",
    )
    external_url: str = Field(
        "",
        description="externalURL in notifications (Alertmanager's --web.external-url); empty: "
        "rules.external_url, else http://<listen>.",
    )
    resend_delay: DurationMs = Field(
        parse_duration("1m"),
        description="How often a firing alert is sent again to the Alertmanager "
        "(Prometheus' --rules.alert.resend-delay).",
    )
    data_retention: DurationMs = Field(
        parse_duration("120h"),
        description="How long expired silences and notification log entries are kept "
        "(Alertmanager's --data.retention).",
    )
    history_retention: DurationMs = Field(
        parse_duration("30d"),
        description="How long the alert history (state changes, notifications, "
        "acknowledgements, escalations) is kept.",
    )
    escalation_policies: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Per receiver of the Alertmanager configuration: levels (`after`, "
        "`receiver`) brought in while its alert groups stay unacknowledged, and "
        "`repeat_interval` for the last level (docs/alerting.md).",
    )
    forward_to: list[str] = Field(
        default_factory=list,
        description="URLs of external Alertmanagers that also receive every alert (POST "
        "/api/v2/alerts), as Prometheus' alerting.alertmanagers sends them.",
    )
    forward_queue_capacity: int = Field(
        10_000,
        ge=1,
        description="Alerts queued per external Alertmanager; when full the oldest are dropped "
        "and counted (Prometheus' --alertmanager.notification-queue-capacity).",
    )
    receiver_active_time_intervals: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Receiver -> time intervals (of the Alertmanager configuration) outside "
        "which it is not notified; news waits for the first flush inside.",
    )
    tenants: dict[str, TenantAlertingSection] = Field(
        default_factory=dict,
        description="Tenants that route their alerts with their own Alertmanager configuration "
        "(and escalation policies and receiver active hours): tenant -> alertmanager_config, "
        "escalation_policies, receiver_active_time_intervals. Other tenants use the settings "
        "above. Reloaded with them.",
    )


class Config(_Section):
    listen: str = Field("127.0.0.1:9900", description="HOST:PORT the HTTP server binds.")
    data_dir: Path = Field(Path("./watchkeeper-data"), description="Where all data lives.")
    metric_name_validation_scheme: NameValidation = Field(
        NameValidation.UTF8,
        description="utf8 (Prometheus 3.x: any UTF-8 name) or legacy ([a-zA-Z_:][a-zA-Z0-9_:]*).",
    )
    storage: StorageConfig = Field(default_factory=StorageConfig)  # type: ignore[arg-type]
    limits: LimitsConfig = Field(default_factory=LimitsConfig)  # type: ignore[arg-type]
    ingest: IngestConfig = Field(default_factory=IngestConfig)  # type: ignore[arg-type]
    query: QueryConfig = Field(default_factory=QueryConfig)  # type: ignore[arg-type]
    auth: AuthConfig = Field(default_factory=AuthConfig)
    self_monitoring: SelfMonitoringConfig = Field(
        default_factory=SelfMonitoringConfig  # type: ignore[arg-type]
    )
    otlp: OtlpSection = Field(default_factory=OtlpSection)  # type: ignore[arg-type]
    scrape: ScrapeSection = Field(default_factory=ScrapeSection)  # type: ignore[arg-type]
    scrape_configs: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Jobs to scrape, in Prometheus' scrape_configs format (paste them from "
        "prometheus.yml; docs/scraping.md). Reloaded on SIGHUP and POST /-/reload.",
    )
    rules: RulesSection = Field(default_factory=RulesSection)  # type: ignore[arg-type]
    rule_files: list[str] = Field(
        default_factory=list,
        description="Prometheus rule files to evaluate (glob patterns, relative to this file, as "
        "in prometheus.yml). Reloaded when they change, on SIGHUP and on POST /-/reload.",
    )
    tenant_rule_files: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Rule files of other tenants: tenant -> glob patterns (relative to this "
        "file). Each tenant's rules read and write its own series and raise its own alerts.",
    )
    alerting: AlertingSection = Field(default_factory=AlertingSection)  # type: ignore[arg-type]
    # the directory of the config file: relative paths in scrape_configs are taken from it
    _source_dir: Path | None = PrivateAttr(None)

    @field_validator("scrape_configs")
    @classmethod
    def _valid_scrape_jobs(cls, value: list[dict[str, Any]], info: ValidationInfo) -> Any:
        scrape = info.data.get("scrape")
        scheme = info.data.get("metric_name_validation_scheme")
        if scrape is not None and scheme is not None:  # else their own errors are reported
            _scrape_jobs(value, scrape, scheme, None)
        return value

    def tenant_rule_file_patterns(self) -> dict[str, list[str]]:
        """Every tenant's rule file patterns: `rule_files` for `rules.tenant`, and
        `tenant_rule_files`, relative ones taken from the config file's directory."""
        base = self._source_dir

        def resolved(pattern: str) -> str:
            if base is not None and not Path(pattern).is_absolute():
                return str(base / pattern)
            return pattern

        found: dict[str, list[str]] = {}
        if self.rule_files:
            found[self.rules.tenant] = [resolved(p) for p in self.rule_files]
        for tenant, patterns in self.tenant_rule_files.items():
            found.setdefault(tenant, []).extend(resolved(p) for p in patterns)
        return found

    def alertmanager_config_path(self, tenant: str | None = None) -> Path | None:
        """`alerting.alertmanager_config`, or that of `alerting.tenants[tenant]`, a relative
        one taken from the config file's directory; None when not set."""
        text = self.alerting.alertmanager_config
        if tenant is not None:
            text = self.alerting.tenants[tenant].alertmanager_config
        if not text:
            return None
        path = Path(text)
        base = self._source_dir
        return base / path if base is not None and not path.is_absolute() else path

    def scrape_jobs(self) -> list[ScrapeConfig]:
        """The parsed, checked scrape jobs; relative paths are taken from the config file's
        directory, as Prometheus takes them."""
        return _scrape_jobs(
            self.scrape_configs, self.scrape, self.metric_name_validation_scheme, self._source_dir
        )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be HOST:PORT, for example 127.0.0.1:9900")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def binds_loopback_only(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def _scrape_jobs(
    raw: list[dict[str, Any]], scrape: ScrapeSection, scheme: NameValidation, base: Path | None
) -> list[ScrapeConfig]:
    # Imported here: the config is read before the server's allocator settings, which must
    # come before the ingest modules import pyarrow (cli._tune_allocators).
    from watchkeeper.ingest.scrape import (  # noqa: PLC0415
        ScrapeConfigError,
        ScrapeDefaults,
        parse_scrape_configs,
    )

    defaults = ScrapeDefaults(
        scrape_interval_ms=scrape.interval,
        scrape_timeout_ms=scrape.effective_timeout(),
        name_validation=scheme,
    )
    try:
        return parse_scrape_configs(raw, defaults, base)
    except ScrapeConfigError as err:
        raise ValueError(str(err)) from None


class ConfigError(Exception):
    """A configuration that cannot be used; the message names the file, key and reason."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or not raw:
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {key}: conflicts with another override")
        try:
            node[path[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError:
            node[path[-1]] = raw
    return tree


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for problem in err.errors():
        key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"  {key}: {problem['msg']}")
    return "\n".join(lines)


def load_config(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """The effective config: defaults, then the file, then the environment, then `overrides`
    (command-line flags). Raises ConfigError naming file, key and reason."""
    source = str(path) if path else "configuration"
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of settings")
        raw = loaded
    env = _env_overrides(os.environ if environ is None else environ)
    if env:
        source = f"{source} (with WATCHKEEPER_* environment overrides)"
    merged = _merge(_merge(raw, env), overrides or {})
    try:
        config = Config.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(_describe(err, source)) from None
    if path is not None:
        config._source_dir = path.resolve().parent
    return config
