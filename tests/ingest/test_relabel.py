"""Relabelling as Prometheus 3.x does it: every action on the examples its documentation gives
for it, the label builder's order of changes, and the rules Prometheus refuses to load."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from watchkeeper.ingest.relabel import RelabelError, RelabelRule, parse_rules, relabel
from watchkeeper.model import NameValidation, labels_from_dict

TARGET = {"__address__": "localhost:9100", "__metrics_path__": "/metrics", "job": "node"}


def _run(labels: dict[str, str], *rules: dict[str, Any]) -> dict[str, str] | None:
    result = relabel(labels_from_dict(labels), parse_rules(list(rules)))
    return None if result is None else dict(result)


CASES: list[tuple[str, dict[str, str], list[dict[str, Any]], dict[str, str] | None]] = [
    (
        "replace: groups of the joined source values into the replacement",
        TARGET,
        [
            {
                "source_labels": ["__address__", "__metrics_path__"],
                "regex": r"([^:]+):(\d+);/(.*)",
                "target_label": "relabel",
                "replacement": "${1}_${2}_${3}",
            }
        ],
        {**TARGET, "relabel": "localhost_9100_metrics"},
    ),
    (
        "replace: the target label name itself from a group",
        TARGET,
        [
            {
                "source_labels": ["__address__"],
                "regex": r"([^:]+):(\d+)",
                "target_label": "port_${2}",
                "replacement": "$1",
            }
        ],
        {**TARGET, "port_9100": "localhost"},
    ),
    (
        "replace: the defaults copy a label (regex (.*), replacement $1)",
        TARGET,
        [{"source_labels": ["job"], "target_label": "service"}],
        {**TARGET, "service": "node"},
    ),
    (
        "replace: a fixed value with no source labels",
        TARGET,
        [{"target_label": "env", "replacement": "production"}],
        {**TARGET, "env": "production"},
    ),
    (
        "replace: no match, no change",
        TARGET,
        [{"source_labels": ["job"], "regex": "mysql", "target_label": "job", "replacement": "db"}],
        TARGET,
    ),
    (
        "replace: the regex is anchored at both ends",
        TARGET,
        [{"source_labels": ["job"], "regex": "no", "target_label": "x", "replacement": "y"}],
        TARGET,
    ),
    (
        "replace: an empty result removes the target label",
        TARGET,
        [{"source_labels": ["missing"], "target_label": "job"}],
        {k: v for k, v in TARGET.items() if k != "job"},
    ),
    (
        "replace: $1x names a group 1x, as in Go: empty, so the label goes",
        TARGET,
        [{"source_labels": ["job"], "regex": "(.*)", "target_label": "job", "replacement": "$1x"}],
        {k: v for k, v in TARGET.items() if k != "job"},
    ),
    (
        "replace: a target name that expands to nothing is skipped",
        TARGET,
        [{"source_labels": ["job"], "regex": "(x)?node", "target_label": "$1", "replacement": "v"}],
        TARGET,
    ),
    (
        "replace: `.` matches a newline (Prometheus 3)",
        {"note": "a\nb"},
        [{"source_labels": ["note"], "regex": "a.b", "target_label": "ok", "replacement": "yes"}],
        {"note": "a\nb", "ok": "yes"},
    ),
    (
        "replace: $$ is a dollar sign",
        TARGET,
        [{"target_label": "price", "replacement": "$$5"}],
        {**TARGET, "price": "$5"},
    ),
    (
        "keep: targets whose joined values match",
        TARGET,
        [
            {
                "source_labels": ["__address__", "__metrics_path__"],
                "regex": r"localhost:\d+;/.*",
                "action": "keep",
            }
        ],
        TARGET,
    ),
    (
        "keep: others are dropped",
        {**TARGET, "__address__": "db1:9100"},
        [
            {
                "source_labels": ["__address__", "__metrics_path__"],
                "regex": r"localhost:\d+;/.*",
                "action": "keep",
            }
        ],
        None,
    ),
    (
        "drop: targets whose joined values match",
        TARGET,
        [{"source_labels": ["__address__"], "regex": "localhost:.*", "action": "drop"}],
        None,
    ),
    (
        "drop: a missing label is the empty string",
        TARGET,
        [{"source_labels": ["missing"], "regex": "", "action": "drop"}],
        None,
    ),
    (
        "keepequal: kept where the joined values equal target_label's value",
        {"__meta_port": "9100", "__port": "9100"},
        [{"source_labels": ["__meta_port"], "target_label": "__port", "action": "keepequal"}],
        {"__meta_port": "9100", "__port": "9100"},
    ),
    (
        "keepequal: dropped where they differ",
        {"__meta_port": "9100", "__port": "9200"},
        [{"source_labels": ["__meta_port"], "target_label": "__port", "action": "keepequal"}],
        None,
    ),
    (
        "dropequal: dropped where they are equal",
        {"__meta_port": "9100", "__port": "9100"},
        [{"source_labels": ["__meta_port"], "target_label": "__port", "action": "dropequal"}],
        None,
    ),
    (
        "labelmap: copies matching labels under the names the replacement makes",
        {"__meta_kubernetes_node_label_zone": "eu-1", "__meta_kubernetes_node_label_os": "linux"},
        [{"regex": "__meta_kubernetes_node_label_(.+)", "action": "labelmap"}],
        {
            "__meta_kubernetes_node_label_zone": "eu-1",
            "__meta_kubernetes_node_label_os": "linux",
            "zone": "eu-1",
            "os": "linux",
        },
    ),
    (
        "labelmap: with a replacement template",
        {"__meta_ec2_tag_Name": "web", "__meta_ec2_tag_team": "core"},
        [{"regex": "__meta_ec2_tag_(.+)", "replacement": "tag_${1}", "action": "labelmap"}],
        {
            "__meta_ec2_tag_Name": "web",
            "__meta_ec2_tag_team": "core",
            "tag_Name": "web",
            "tag_team": "core",
        },
    ),
    (
        "labeldrop: labels whose names match go",
        {"__meta_a": "1", "__tmp_b": "2", "job": "node"},
        [{"regex": "__meta_.*|__tmp_.*", "action": "labeldrop"}],
        {"job": "node"},
    ),
    (
        "labelkeep: labels whose names do not match go",
        {"__name__": "up", "job": "node", "instance": "a:1", "pod": "x"},
        [{"regex": "__name__|job|instance", "action": "labelkeep"}],
        {"__name__": "up", "job": "node", "instance": "a:1"},
    ),
    (
        "lowercase",
        {"Env": "PrOd"},
        [{"source_labels": ["Env"], "target_label": "env", "action": "lowercase"}],
        {"Env": "PrOd", "env": "prod"},
    ),
    (
        "uppercase",
        {"a": "x", "b": "y"},
        [
            {
                "source_labels": ["a", "b"],
                "separator": "-",
                "target_label": "ab",
                "action": "uppercase",
            }
        ],
        {"a": "x", "b": "y", "ab": "X-Y"},
    ),
    (
        "rules apply in order, each seeing what the one before set",
        TARGET,
        [
            {"source_labels": ["__address__"], "regex": "(.*):.*", "target_label": "__tmp_host"},
            {"source_labels": ["__tmp_host"], "regex": "localhost", "action": "keep"},
            {"source_labels": ["__tmp_host"], "target_label": "instance"},
            {"regex": "__tmp_.*", "action": "labeldrop"},
        ],
        {**TARGET, "instance": "localhost"},
    ),
    (
        "actions are read in any case, as Prometheus does",
        TARGET,
        [{"regex": "__.*", "action": "LabelDrop"}],
        {"job": "node"},
    ),
]


@pytest.mark.parametrize(
    ("labels", "rules", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_action_gives_the_documented_result(
    labels: dict[str, str], rules: list[dict[str, Any]], expected: dict[str, str] | None
) -> None:
    assert _run(labels, *rules) == expected


def test_hashmod_takes_the_last_8_bytes_of_the_md5_big_endian() -> None:
    rule = {
        "source_labels": ["instance"],
        "modulus": 8,
        "target_label": "__shard",
        "action": "hashmod",
    }
    shards = {f"host-{k}:9100": _run({"instance": f"host-{k}:9100"}, rule) for k in range(40)}
    for instance, got in shards.items():
        assert got is not None
        digest = hashlib.md5(instance.encode()).digest()
        assert got["__shard"] == str(int.from_bytes(digest[8:], "big") % 8)
    # one value's shard written out, so that a change of the formula shows (MD5 bytes 8-15 of
    # "localhost:9090", big-endian, modulo 1,000)
    thousand = {**rule, "modulus": 1000}
    assert _run({"instance": "localhost:9090"}, thousand) == {
        "instance": "localhost:9090",
        "__shard": "618",
    }
    assert len({s["__shard"] for s in shards.values() if s}) == 8  # spreads over the shards


def test_labelmap_sees_labels_in_the_builders_order_the_last_copy_wins() -> None:
    # both source labels map to `x`: untouched labels come in name order, so __b's value wins;
    # a label a rule set earlier comes after them, in the order it was first set
    rules = [{"regex": "__(a|b)", "replacement": "x", "action": "labelmap"}]
    assert _run({"__a": "1", "__b": "2"}, *rules) == {"__a": "1", "__b": "2", "x": "2"}
    rules = [
        {"target_label": "__a", "replacement": "3"},
        {"regex": "__(a|b)", "replacement": "x", "action": "labelmap"},
    ]
    assert _run({"__a": "1", "__b": "2"}, *rules) == {"__a": "3", "__b": "2", "x": "3"}


REFUSED = [
    ({"action": "rename"}, 'unknown relabel action "rename"'),
    ({"action": "hashmod", "target_label": "s"}, "hashmod requires non-zero modulus"),
    ({"source_labels": ["a"]}, "replace action requires 'target_label' value"),
    ({"action": "lowercase", "source_labels": ["a"]}, "lowercase action requires 'target_label'"),
    (
        {"source_labels": ["a"], "target_label": "b", "replacement": "x", "action": "uppercase"},
        "'replacement' can not be set for uppercase action",
    ),
    (
        {"source_labels": ["a"], "target_label": "b", "regex": "(.*)", "action": "keepequal"},
        "keepequal action requires only 'source_labels' and `target_label`",
    ),
    (
        {"source_labels": ["a"], "target_label": "b", "separator": ",", "action": "dropequal"},
        "dropequal action requires only 'source_labels' and `target_label`",
    ),
    (
        {"source_labels": ["a"], "regex": "a", "action": "labeldrop"},
        "labeldrop action requires only 'regex', and no other fields",
    ),
    (
        {"target_label": "b", "regex": "a", "action": "labelkeep"},
        "labelkeep action requires only 'regex', and no other fields",
    ),
    ({"regex": "a", "replacement": "", "action": "labelmap"}, "is invalid 'replacement'"),
    ({"source_labels": ["a"], "target_label": "b", "regex": "(", "action": "keep"}, "regular"),
    ({"source_labels": "a", "target_label": "b"}, "source_labels must be a list"),
    ({"target_label": "b", "modulo": 3}, "unknown field 'modulo'"),
]


@pytest.mark.parametrize(("raw", "message"), REFUSED, ids=[m for _, m in REFUSED])
def test_rules_prometheus_refuses_are_refused_with_its_message(
    raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(RelabelError) as caught:
        parse_rules([{"target_label": "ok"}, raw])
    assert str(caught.value).startswith("relabel rule 2: ")
    assert message in str(caught.value)


def test_legacy_name_validation_refuses_what_utf8_allows() -> None:
    dotted = {"source_labels": ["a"], "target_label": "host.name"}
    assert RelabelRule.parse(dotted).target_label == "host.name"
    with pytest.raises(RelabelError, match=r"\"host\.name\" is invalid 'target_label'"):
        RelabelRule.parse(dotted, NameValidation.LEGACY)
    templated = {"source_labels": ["a"], "regex": "(.*)", "target_label": "x_${1}"}
    assert RelabelRule.parse(templated, NameValidation.LEGACY).target_label == "x_${1}"
    with pytest.raises(RelabelError, match="is invalid 'target_label'"):
        RelabelRule.parse({**templated, "target_label": "x-${1}"}, NameValidation.LEGACY)
    # at run time, an expanded target that is not a legacy name is skipped
    rule = RelabelRule.parse(
        {"source_labels": ["a"], "regex": "(.*)", "target_label": "x_${1}"}, NameValidation.LEGACY
    )
    assert relabel(labels_from_dict({"a": "b-c"}), [rule]) == labels_from_dict({"a": "b-c"})
    assert relabel(labels_from_dict({"a": "bc"}), [rule]) == labels_from_dict(
        {"a": "bc", "x_bc": "bc"}
    )
