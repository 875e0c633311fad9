"""Relabel rules with the label sets they give, and rules Prometheus refuses with its message:
shared by the unit tests and the peer test that runs them through Prometheus' promtool.

Each case is (title, input labels, rules, labels after them or None where dropped). The cases
keep `__address__` wherever they keep a target, so that Prometheus scrapes (and the peer test
compares) the same target.
"""

from __future__ import annotations

from typing import Any

TARGET = {"__address__": "localhost:9100", "__metrics_path__": "/metrics", "job": "node"}

# cases whose result differs in Debian's Prometheus 2.42, with the reason
PROMETHEUS_2_DIFFERS = {
    "replace: `.` matches a newline (Prometheus 3)": (
        "Prometheus 3 compiles relabel regexes as ^(?s:...)$ (model/relabel NewRegexp), so `.` "
        "matches a newline; 2.42 compiles ^(?:...)$, where it does not"
    ),
}

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
        # Prometheus needs its own `__` labels after relabelling: keep them
        [{"regex": "__.*|job|instance", "action": "labelkeep"}],
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
        "hashmod: MD5 of the value, its last 8 bytes big-endian, modulo `modulus`",
        TARGET,
        [
            {
                "source_labels": ["__address__"],
                "modulus": 1000,
                "target_label": "__tmp_shard",
                "action": "hashmod",
            },
            {"source_labels": ["__tmp_shard"], "target_label": "shard"},
        ],
        {**TARGET, "__tmp_shard": "751", "shard": "751"},
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
        [{"regex": "__metrics_path__", "action": "LabelDrop"}],
        {"__address__": "localhost:9100", "job": "node"},
    ),
]


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
