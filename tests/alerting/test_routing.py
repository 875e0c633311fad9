"""Alertmanager routing: every vector of ../shared/conformance/alertmanager/routing-vectors.yml
routes to exactly its receivers, in order (amtool config routes test), and the matcher syntax
and route checks follow Alertmanager's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import SHARED
from watchkeeper.alerting import RoutingError, load_alertmanager_config, parse_matcher
from watchkeeper.alerting.amconfig import parse_alertmanager_config
from watchkeeper.model import MatchOp

ALERTMANAGER = SHARED / "conformance" / "alertmanager"
pytestmark = pytest.mark.skipif(
    not ALERTMANAGER.is_dir(), reason="../shared/conformance/alertmanager is absent"
)


def _vectors() -> list[dict[str, Any]]:
    if not ALERTMANAGER.is_dir():
        return []
    return yaml.safe_load((ALERTMANAGER / "routing-vectors.yml").read_text())["vectors"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "vector", _vectors(), ids=lambda v: f"{Path(v['config']).name}:{v['labels']}"
)
def test_routing_vectors(vector: dict[str, Any]) -> None:
    config = load_alertmanager_config(ALERTMANAGER / vector["config"])
    labels = {k: str(v) for k, v in vector["labels"].items()}
    assert [r.receiver for r in config.route.match(labels)] == vector["receivers"]


def test_children_inherit_receiver_grouping_and_timers() -> None:
    config = load_alertmanager_config(ALERTMANAGER / "doc-examples" / "simple.yml")
    root = config.route
    database = root.routes[2]
    assert database.group_by == ("alertname", "cluster", "database")
    owner_x = database.routes[0]
    assert owner_x.group_by == ("alertname", "cluster", "database")  # inherited
    assert (owner_x.group_wait_ms, owner_x.repeat_interval_ms) == (30_000, 3 * 3_600_000)


@pytest.mark.parametrize(
    ("text", "name", "op", "value"),
    [
        ('service=~"foo1|foo2|baz"', "service", MatchOp.REGEX, "foo1|foo2|baz"),
        ('severity="critical"', "severity", MatchOp.EQUAL, "critical"),
        ("owner = team-X", "owner", MatchOp.EQUAL, "team-X"),
        ('env!~"dev|test"', "env", MatchOp.NOT_REGEX, "dev|test"),
        ('msg!="a \\"quoted\\" word"', "msg", MatchOp.NOT_EQUAL, 'a "quoted" word'),
        ('"service.name"="api"', "service.name", MatchOp.EQUAL, "api"),
    ],
)
def test_matchers(text: str, name: str, op: MatchOp, value: str) -> None:
    matcher = parse_matcher(text)
    assert (matcher.name, matcher.op, matcher.value) == (name, op, value)


def test_regexes_are_anchored() -> None:
    matcher = parse_matcher('service=~"foo"')
    assert matcher.matches("foo") and not matcher.matches("foobar")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"route": {"receiver": "nobody"}, "receivers": [{"name": "a"}]},
            'undefined receiver "nobody" used in route',
        ),
        (
            {"route": {"receiver": "a", "continue": True}, "receivers": [{"name": "a"}]},
            "cannot have continue in root route",
        ),
        (
            {"route": {"receiver": "a", "matchers": ['x="1"']}, "receivers": [{"name": "a"}]},
            "root route must not have any matchers",
        ),
        (
            {"route": {"routes": []}, "receivers": [{"name": "a"}]},
            "root route must specify a default receiver",
        ),
        ({"receivers": [{"name": "a"}]}, "no routes provided"),
        (
            {"route": {"receiver": "a"}, "receivers": [{"name": "a"}, {"name": "a"}]},
            'notification config name "a" is not unique',
        ),
        (
            {
                "route": {"receiver": "a", "routes": [{"matchers": ["not a matcher"]}]},
                "receivers": [{"name": "a"}],
            },
            "bad matcher format: not a matcher",
        ),
        (
            {
                "route": {"receiver": "a", "routes": [{"match_re": {"invalid_label": None}}]},
                "receivers": [{"name": "a"}],
            },
            "invalid_label",
        ),
        (
            {"route": {"receiver": "a", "group_by": ["...", "x"]}, "receivers": [{"name": "a"}]},
            "cannot have wildcard group_by",
        ),
    ],
)
def test_route_checks(config: dict[str, Any], message: str) -> None:
    with pytest.raises(RoutingError, match=message.replace("(", r"\(")):
        parse_alertmanager_config(config)


@pytest.mark.parametrize(
    ("receiver", "message"),
    [
        ({"discord_configs": [{"title": "t"}]}, "one of webhook_url or webhook_url_file"),
        (
            {"webex_configs": [{"http_config": {"authorization": {"credentials": "x"}}}]},
            "missing room_id on webex_config",
        ),
        (
            {"webex_configs": [{"room_id": "r"}]},
            "missing webex_configs.http_config.authorization",
        ),
        (
            {"opsgenie_configs": [{"api_key": "k", "responders": [{"type": "team"}]}]},
            r"responder \{   team\} has to have at least one of id, username or name",
        ),
        (
            {"opsgenie_configs": [{"api_key": "k", "responders": [{"id": "1", "type": "group"}]}]},
            r"type does not match valid options \^\(team\|teams\|user",
        ),
        (
            {"victorops_configs": [{"api_key": "k"}]},
            "missing Routing key in VictorOps config",
        ),
        (
            {
                "victorops_configs": [
                    {"api_key": "k", "routing_key": "r", "custom_fields": {"entity_id": "x"}}
                ]
            },
            "victorOps config contains custom field entity_id which cannot be used",
        ),
        (
            {"telegram_configs": [{"bot_token": "t"}]},
            "missing chat_id or chat_id_file on telegram_config",
        ),
        (
            {"telegram_configs": [{"bot_token": "t", "chat_id": 1, "parse_mode": "html"}]},
            "unknown parse_mode on telegram_config",
        ),
    ],
)
def test_integration_settings_are_checked_as_alertmanager_checks_them(
    receiver: dict[str, Any], message: str
) -> None:
    config = {"route": {"receiver": "a"}, "receivers": [{"name": "a", **receiver}]}
    with pytest.raises(RoutingError, match=message):
        parse_alertmanager_config(config)


def _slack(*actions: dict[str, Any]) -> dict[str, Any]:
    slack = {"api_url": "http://hook", "actions": list(actions)}
    return {"route": {"receiver": "a"}, "receivers": [{"name": "a", "slack_configs": [slack]}]}


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ({"text": "t", "url": "http://x"}, "missing type in Slack action configuration"),
        ({"type": "button", "url": "http://x"}, "missing text in Slack action configuration"),
        ({"type": "button", "text": "t"}, "missing name or url in Slack action configuration"),
        (
            {"type": "button", "text": "t", "name": "n", "confirm": {"title": "sure?"}},
            "missing text in Slack confirmation configuration",
        ),
    ],
)
def test_slack_actions_are_checked_as_alertmanager_checks_them(
    action: dict[str, Any], message: str
) -> None:
    with pytest.raises(RoutingError, match=message):
        parse_alertmanager_config(_slack(action))
    parse_alertmanager_config(_slack({"type": "button", "text": "t", "url": "http://x"}))


def test_the_routes_test_command() -> None:
    config = ALERTMANAGER / "amtool-testdata" / "conf.routing.yml"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "watchkeeper", "routes", "test", "--config", str(config), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    answer = run("test=2")
    assert (answer.returncode, answer.stdout) == (0, "test1,test2\n")
    assert run("--verify-receivers", "test1,test2", "test=2").returncode == 0
    assert run("--verify-receivers", "test1", "test=2").returncode == 1


def _loading_table() -> list[tuple[str, str, str]]:
    if not ALERTMANAGER.is_dir():
        return []
    text = (ALERTMANAGER / "SOURCE.md").read_text()
    rows = re.findall(r"^\| `(conf\.[^`]+)` \| (loads|rejected) \|(.*)\|$", text, re.M)
    out = []
    for name, verdict, error in rows:
        expected = error.strip().removeprefix("error contains").strip().strip("`")
        # yaml's own wrapping (line numbers) is Go's decoder's; the finding is what we match
        expected = re.sub(r"^yaml: unmarshal errors:\s+line \d+: ", "", expected)
        out.append((name, verdict, expected))
    return out


@pytest.mark.parametrize(("name", "verdict", "error"), _loading_table())
def test_config_files_load_or_are_refused_as_alertmanager_does(
    name: str, verdict: str, error: str
) -> None:
    path = ALERTMANAGER / "config-testdata" / name
    if verdict == "loads":
        load_alertmanager_config(path)
        return
    with pytest.raises(RoutingError) as refused:
        load_alertmanager_config(path)
    assert error in str(refused.value)


@pytest.mark.parametrize(
    ("path", "loads"),
    [
        ("amtool-testdata/conf.good.yml", True),
        ("amtool-testdata/conf.bad.yml", False),
        ("doc-examples/simple.yml", True),  # with its tracing: block
        ("doc-examples/route_labels.yml", True),  # with route labels (0.34)
    ],
)
def test_amtool_and_documentation_examples(path: str, loads: bool) -> None:
    if loads:
        load_alertmanager_config(ALERTMANAGER / path)
    else:
        with pytest.raises(RoutingError):
            load_alertmanager_config(ALERTMANAGER / path)
