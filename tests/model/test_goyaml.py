"""YAML booleans keep their text for string fields, as Go's yaml.v2 decodes them."""

from __future__ import annotations

from watchkeeper.alerting import parse_alertmanager_text
from watchkeeper.model import goyaml, yaml_label_text


def test_booleans_are_booleans_that_print_as_written() -> None:
    raw = goyaml.load("a: Yes\nb: off\nc: true\nd: 'yes'\ne: 1\n")
    assert [bool(raw[k]) for k in "abc"] == [True, False, True]
    assert [str(raw[k]) for k in "abc"] == ["Yes", "off", "true"]
    assert raw["d"] == "yes" and raw["e"] == 1 and raw["a"] == True  # noqa: E712
    assert [yaml_label_text(raw[k]) for k in "abc"] == ["Yes", "off", "true"]
    assert yaml_label_text(True) == "true"  # from a plain loader: the text is lost


def test_an_alertmanager_route_matches_a_label_written_as_a_yaml_boolean() -> None:
    config = parse_alertmanager_text(
        "route:\n  receiver: a\n  routes:\n    - match: {paging: Yes}\n      receiver: b\n"
        "receivers: [{name: a}, {name: b, webhook_configs: [{url: 'http://x', "
        "send_resolved: no}]}]\n"
    )
    assert [r.receiver for r in config.route.match({"paging": "Yes"})] == ["b"]
    assert [r.receiver for r in config.route.match({"paging": "true"})] == ["a"]
    (hook,) = config.integrations["b"]
    assert not hook.send_resolved
