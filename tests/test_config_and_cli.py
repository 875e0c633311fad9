"""Config loading, environment overrides, and the command line's answers to bad input."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port
from watchkeeper.config import ConfigError, load_config


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watchkeeper", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_defaults_need_no_file() -> None:
    config = load_config(environ={})
    assert config.listen == "127.0.0.1:9900"
    assert config.data_dir == Path("watchkeeper-data")
    assert config.storage.retention == 15 * 86_400_000
    assert config.auth.tokens == []
    assert config.self_monitoring.enabled


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "wk.yml"
    path.write_text("storage:\n  retention: 30d\nlimits:\n  max_labels_per_series: 10\n")
    config = load_config(
        path,
        environ={"WATCHKEEPER_LIMITS__MAX_LABELS_PER_SERIES": "20", "OTHER": "x"},
        overrides={"listen": "127.0.0.1:1234"},
    )
    assert config.storage.retention == 30 * 86_400_000
    assert config.limits.max_labels_per_series == 20
    assert config.port == 1234


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "storage:\n  retention: 3 weeks\n",
            "storage.retention: Value error, not a valid duration",
        ),
        ("limits:\n  max_samples_per_request: 0\n", "limits.max_samples_per_request"),
        ("nonsense: 1\n", "nonsense: Extra inputs are not permitted"),
        ("listen: 9900\n", "listen: Input should be a valid string"),
        ("auth:\n  tokens:\n    - name: x\n      sha256: abc\n", "auth.tokens.0.sha256"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_files_name_file_key_and_reason(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_config_check_command(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text("storage:\n  block_duration: 1h\n")
    result = _cli("config", "check", str(good))
    assert result.returncode == 0 and "valid" in result.stdout
    bad = tmp_path / "bad.yml"
    bad.write_text("storage:\n  block_duration: 10s\n")
    result = _cli("config", "check", str(bad))
    assert result.returncode == 1
    assert f"{bad}: invalid configuration" in result.stderr
    assert "storage.block_duration: Value error, must be at least 1m" in result.stderr


def test_config_check_checks_the_files_the_config_names(tmp_path: Path) -> None:
    """As serve refuses them at start: rule files (of every tenant) and Alertmanager
    configurations."""
    config = tmp_path / "wk.yml"
    config.write_text(
        "rule_files: [rules.yml]\ntenant_rule_files: {team-a: [a.yml]}\n"
        "alerting:\n  alertmanager_config: am.yml\n"
        "  tenants: {team-a: {alertmanager_config: a-am.yml}}\n"
    )
    good_rules = "groups: [{name: g, rules: [{alert: X, expr: up == 0}]}]\n"
    good_am = "route: {receiver: r}\nreceivers: [{name: r}]\n"
    files = {"rules.yml": good_rules, "a.yml": good_rules, "am.yml": good_am, "a-am.yml": good_am}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert _cli("config", "check", str(config)).returncode == 0
    (tmp_path / "a.yml").write_text("groups: [{name: g, rules: [{alert: X, expr: 'up =='}]}]\n")
    result = _cli("config", "check", str(config))
    assert result.returncode == 1
    assert "rule_files: tenant team-a:" in result.stderr and "could not parse" in result.stderr
    (tmp_path / "a.yml").write_text(good_rules)
    (tmp_path / "a-am.yml").write_text("route: {receiver: nobody}\nreceivers: []\n")
    result = _cli("config", "check", str(config))
    assert result.returncode == 1
    assert "alerting.tenants.team-a.alertmanager_config:" in result.stderr
    assert 'undefined receiver "nobody"' in result.stderr


def test_serve_with_bad_config_fails_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("limits:\n  max_request_body_bytes: -1\n")
    result = _cli("serve", "--config", str(bad), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 1
    assert "limits.max_request_body_bytes" in result.stderr


def test_version_help_and_token_create() -> None:
    assert _cli("--version").stdout.startswith("watchkeeper ")
    help_text = _cli("--help").stdout
    assert "watchkeeper serve" in help_text and "remote_write" in help_text
    created = _cli("token", "create", "--name", "grafana", "--role", "viewer")
    assert created.returncode == 0
    token = created.stdout.split("token (shown once, keep it secret): ")[1].split()[0]
    assert hashlib.sha256(token.encode()).hexdigest() in created.stdout


def test_a_data_dir_serves_one_process(start_server) -> None:
    server = start_server()
    result = _cli("serve", "--data-dir", str(server.data_dir), "--listen", "127.0.0.1:9")
    assert result.returncode == 1
    assert "is in use by another watchkeeper process" in result.stderr


def test_a_corrupt_wal_is_a_clean_start_up_error(tmp_path: Path) -> None:
    wal = tmp_path / "metrics" / "wal"
    wal.mkdir(parents=True)
    (wal / "00000001").write_bytes(b"\x05\x00\x00\x00garbage-that-is-not-a-record")
    (wal / "00000002").write_bytes(b"")
    result = _cli("serve", "--data-dir", str(tmp_path), "--listen", "127.0.0.1:9")
    assert result.returncode == 1
    assert "cannot be opened" in result.stderr and "is corrupt" in result.stderr


def test_a_taken_otlp_grpc_port_is_a_clean_start_up_error(start_server, tmp_path: Path) -> None:
    port = free_port()
    start_server(env={"WATCHKEEPER_OTLP__GRPC_LISTEN": f"127.0.0.1:{port}"})
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "watchkeeper",
            "serve",
            "--data-dir",
            str(tmp_path / "other"),
            "--listen",
            f"127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "WATCHKEEPER_OTLP__GRPC_LISTEN": f"127.0.0.1:{port}"},
    )
    assert result.returncode == 1
    assert f"otlp.grpc_listen: cannot listen on 127.0.0.1:{port}" in result.stderr
