"""The `watchkeeper` command line."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from watchkeeper import __version__
from watchkeeper.config import Config, ConfigError, hash_token, load_config

EXAMPLES = """\
examples:
  watchkeeper serve                              # ./watchkeeper-data, 127.0.0.1:9900
  watchkeeper serve --config watchkeeper.yml --listen 0.0.0.0:9900
  watchkeeper config check watchkeeper.yml       # validate a config file and exit
  watchkeeper token create --name grafana --role viewer
  watchkeeper rules check rules/*.yml            # validate rule files like promtool check rules
  watchkeeper rules test tests/*.yml             # run rule unit tests like promtool test rules
  watchkeeper routes test --config alertmanager.yml severity=critical service=db

Point Prometheus at it with:
  remote_write:
    - url: http://127.0.0.1:9900/api/v1/write
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watchkeeper",
        description="Self-hosted observability: Prometheus-compatible ingest, storage and query.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"watchkeeper {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Run the server: HTTP API, ingest, storage and background work in one "
        "process. Settings come from defaults, then --config, then WATCHKEEPER_* environment "
        "variables (e.g. WATCHKEEPER_STORAGE__RETENTION=30d), then these flags.",
    )
    serve.add_argument("--config", type=Path, help="YAML config file (see docs/configuration.md)")
    serve.add_argument("--data-dir", type=Path, help="data directory (default ./watchkeeper-data)")
    serve.add_argument("--listen", help="HOST:PORT to bind (default 127.0.0.1:9900)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    config = commands.add_parser("config", help="work with config files")
    config_commands = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    check = config_commands.add_parser(
        "check",
        help="validate a config file",
        description="Validate a config file (with WATCHKEEPER_* overrides applied) and the "
        "files it names (rule files and Alertmanager configurations, of every tenant), and "
        "print the effective settings; exit status 1 with the file, key and reason if "
        "anything is invalid.",
    )
    check.add_argument("file", type=Path)

    rules = commands.add_parser("rules", help="work with Prometheus rule files")
    rules_commands = rules.add_subparsers(dest="rules_command", metavar="SUBCOMMAND")
    rules_check = rules_commands.add_parser(
        "check",
        help="validate rule files",
        description="Validate Prometheus rule files (plain, or PrometheusRule resources with "
        "spec.groups) as promtool check rules does: every problem is printed with its group, "
        "rule and reason. Exit status 0 if all files are valid, 1 if any is not.",
    )
    rules_check.add_argument("files", type=Path, nargs="+", metavar="FILE")
    rules_test = rules_commands.add_parser(
        "test",
        help="run rule unit tests",
        description="Run rule unit tests written for promtool test rules: input series, "
        "alert_rule_test and promql_expr_test, with promtool's output. Exit status 0 if every "
        "test passes, 1 if not.",
    )
    rules_check.add_argument(
        "--legacy-names",
        action="store_true",
        help="check label and annotation names against the legacy character set",
    )
    rules_test.add_argument("files", type=Path, nargs="+", metavar="FILE")
    rules_test.add_argument(
        "--run",
        action="append",
        metavar="REGEX",
        help="only the test groups whose name matches; repeat for several",
    )
    for sub in (rules_check, rules_test):
        sub.add_argument(
            "--ignore-unknown-fields",
            action="store_true",
            help="accept rule files with keys the format does not know (tools' extras)",
        )

    routes = commands.add_parser("routes", help="work with Alertmanager routing trees")
    routes_commands = routes.add_subparsers(dest="routes_command", metavar="SUBCOMMAND")
    routes_test = routes_commands.add_parser(
        "test",
        help="which receivers an alert goes to",
        description="Print the receivers an alert with the given labels is routed to by an "
        "Alertmanager configuration's route tree, in order and comma-separated, as amtool "
        "config routes test does. With --verify-receivers, exit status 1 unless they are "
        "exactly those.",
    )
    routes_test.add_argument("--config", type=Path, required=True, help="Alertmanager config")
    routes_test.add_argument("--verify-receivers", help="expected receivers, comma-separated")
    routes_test.add_argument("labels", nargs="*", metavar="NAME=VALUE")

    token = commands.add_parser("token", help="manage API tokens")
    token_commands = token.add_subparsers(dest="token_command", metavar="SUBCOMMAND")
    create = token_commands.add_parser(
        "create",
        help="make a new API token",
        description="Print a new random API token once, and the auth.tokens entry (holding "
        "only its SHA-256) to paste into the config file.",
    )
    create.add_argument("--name", required=True, help="who will use it (shown in the audit log)")
    create.add_argument("--role", default="viewer", choices=["viewer", "editor", "admin"])
    create.add_argument("--tenant", default="default", help="tenant it acts on by default")
    return parser


def _load(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = str(args.data_dir)
    if getattr(args, "listen", None):
        overrides["listen"] = args.listen
    return load_config(args.config, overrides=overrides)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "config" and args.config_command == "check":
            from watchkeeper.app import check_files  # noqa: PLC0415 (the server's imports)

            config = load_config(args.file)
            check_files(config)
            print(f"{args.file}: valid")
            print(config.model_dump_json(indent=2))
            return 0
        if args.command == "rules" and args.rules_command == "check":
            return _rules_check(args.files, args.legacy_names, args.ignore_unknown_fields)
        if args.command == "rules" and args.rules_command == "test":
            return _rules_test(args.files, args.run, args.ignore_unknown_fields)
        if args.command == "routes" and args.routes_command == "test":
            return _routes_test(args.config, args.labels, args.verify_receivers)
        if args.command == "token" and args.token_command == "create":
            value = "wk_" + secrets.token_urlsafe(32)
            print(f"token (shown once, keep it secret): {value}\n")
            print("add to the config file under auth.tokens:")
            print(f"  - name: {args.name}\n    role: {args.role}\n    tenant: {args.tenant}")
            print(f"    sha256: {hash_token(value)}")
            return 0
    except ConfigError as err:
        print(f"watchkeeper: {err}", file=sys.stderr)
        return 1
    parser.print_help()
    return 2


def _rules_test(files: list[Path], run: list[str] | None, ignore_unknown: bool) -> int:
    from watchkeeper.rules.unittests import UnitTestError, run_file  # noqa: PLC0415

    try:
        results = [run_file(path, run, ignore_unknown) for path in files]
    except UnitTestError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0 if all(results) else 1


def _rules_check(files: list[Path], legacy: bool, ignore_unknown: bool) -> int:
    # imported here: the rules package brings the PromQL parser, which only this command needs
    from watchkeeper.model import NameValidation  # noqa: PLC0415
    from watchkeeper.rules import RuleFileError, load_file  # noqa: PLC0415

    scheme = NameValidation.LEGACY if legacy else NameValidation.UTF8
    failed = False
    for path in files:
        print(f"Checking {path}")
        try:
            groups = load_file(path, scheme, ignore_unknown)
        except RuleFileError as err:
            failed = True
            print("  FAILED:")
            for error in err.errors:
                print(f"{path}: {error}")
            print()
            continue
        count = sum(len(group.rules) for group in groups)
        print(f"  SUCCESS: {count} rules found\n")
    return 1 if failed else 0


def _routes_test(path: Path, pairs: list[str], verify: str | None) -> int:
    from watchkeeper.alerting import RoutingError, load_alertmanager_config  # noqa: PLC0415

    labels = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            print(f"watchkeeper: a label is NAME=VALUE, not {pair!r}", file=sys.stderr)
            return 2
        labels[name] = value.strip('"')
    try:
        config = load_alertmanager_config(path)
    except RoutingError as err:
        print(f"watchkeeper: {path}: {err}", file=sys.stderr)
        return 1
    receivers = ",".join(route.receiver for route in config.route.match(labels))
    print(receivers)
    if verify is not None and verify != receivers:
        print("WARNING: Expected receivers did not match resolved receivers.", file=sys.stderr)
        return 1
    return 0


M_ARENA_MAX = -8  # glibc mallopt parameter


def _tune_allocators() -> None:
    """Allocator settings for a long-running server, applied before the heavy imports. Measured
    with benchmarks/ingest.py (10,000 series, 4.8M samples): peak RSS 309 -> 257-261 MiB, same
    CPU. Arrow's default mimalloc pool keeps freed memory; glibc makes an arena per thread.
    Both can be overridden by setting ARROW_DEFAULT_MEMORY_POOL or MALLOC_ARENA_MAX."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to tune
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 2)


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every scrape request at INFO; a scrape's failure shows in /api/v1/targets
    logging.getLogger("httpx").setLevel(logging.WARNING)
    _tune_allocators()
    # heavy imports only when serving, after the allocator settings
    from watchkeeper.app import Watchkeeper  # noqa: PLC0415
    from watchkeeper.store import WALFailedError  # noqa: PLC0415

    config = _load(args)
    app = Watchkeeper(config, reload_config=lambda: _load(args))
    print(
        f"watchkeeper {__version__} listening on http://{config.listen} "
        f"(data in {config.data_dir.resolve()}, auth {'on' if config.auth.tokens else 'off'})",
        file=sys.stderr,
    )
    try:
        app.serve()
    except WALFailedError as err:
        print(f"watchkeeper: storage in {config.data_dir} cannot be opened: {err}", file=sys.stderr)
        return 1
    return 0
