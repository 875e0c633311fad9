"""Relabelling as Prometheus 3.x does it: every action on the examples its documentation gives
for it, the label builder's order of changes, and the rules Prometheus refuses to load."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from watchkeeper.ingest.relabel import RelabelError, RelabelRule, parse_rules, relabel
from watchkeeper.model import NameValidation, labels_from_dict

from .relabel_cases import CASES, REFUSED


def _run(labels: dict[str, str], *rules: dict[str, Any]) -> dict[str, str] | None:
    result = relabel(labels_from_dict(labels), parse_rules(list(rules)))
    return None if result is None else dict(result)


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


def test_yaml_values_that_are_not_strings_are_read_as_their_text() -> None:
    # `regex: 200` is a number to YAML, `separator:` with nothing after it is null
    rules = parse_rules(
        [{"source_labels": ["code", "x"], "separator": None, "regex": 200, "action": "keep"}]
    )
    assert relabel(labels_from_dict({"code": "200"}), rules) == labels_from_dict({"code": "200"})
    assert relabel(labels_from_dict({"code": "20", "x": "0"}), rules) is not None
    assert relabel(labels_from_dict({"code": "404"}), rules) is None
