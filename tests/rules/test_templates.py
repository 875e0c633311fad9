"""Rule templates: Go's text/template as Prometheus alert labels and annotations use it, with
Prometheus' functions and its number formatting (template_reference.md; template_test.go)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from watchkeeper.rules.template_functions import LabelMap, Sample, TemplateError
from watchkeeper.rules.templates import Template


def render(text: str, labels: dict[str, str] | None = None, value: Any = 0.0, **run: Any) -> str:
    data = {
        "Labels": LabelMap(labels or {}),
        "ExternalLabels": LabelMap({"cluster": "eu-1"}),
        "ExternalURL": "https://prom.example.com/prometheus",
        "Value": value,
    }
    variables = {
        "$labels": data["Labels"],
        "$externalLabels": data["ExternalLabels"],
        "$externalURL": data["ExternalURL"],
        "$value": value,
    }
    run.setdefault("external_url", data["ExternalURL"])
    return Template("__alert_Test", text).render(data, variables, **run)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ $labels.instance }} of job {{ $labels.job }} down", "db-1:9100 of job node down"),
        ("{{ .Labels.job }}/{{ $externalLabels.cluster }}", "node/eu-1"),
        ("[{{ $labels.missing }}]", "[]"),
        ("{{ $value }}", "1.5"),
        ("{{ 1234567.891 }}", "1.234567891e+06"),
        ("{{ humanize 1234567.891 }}", "1.235M"),
        ("{{ humanize 0.0012 }}", "1.2m"),
        ("{{ humanize 0 }}", "0"),
        ('{{ humanize "2048" }}', "2.048k"),
        ("{{ humanize1024 2048 }}", "2ki"),
        ("{{ humanize1024 0.5 }}", "0.5"),
        ("{{ humanizeDuration 3725.5 }}", "1h 2m 5s"),
        ("{{ humanizeDuration 90061 }}", "1d 1h 1m 1s"),
        ("{{ humanizeDuration 1.5 }}", "1.5s"),
        ("{{ humanizeDuration 0.25 }}", "250ms"),
        ("{{ humanizeDuration 0 }}", "0s"),
        ("{{ humanizePercentage 0.1234567 }}", "12.35%"),
        ("{{ humanizeTimestamp 1435065584.128 }}", "2015-06-23 13:19:44.128 +0000 UTC"),
        ('{{ printf "%.2f%%" 12.345 }}', "12.35%"),
        ('{{ printf "%s has %d items" "cart" 3 }}', "cart has 3 items"),
        ('{{ printf "%q" "x" }}', '"x"'),
        ('{{ reReplaceAll "(.*):.*" "$1" $labels.instance }}', "db-1"),
        ('{{ title "hello world" }} {{ toUpper "ab" }} {{ toLower "CD" }}', "Hello World AB cd"),
        ('{{ if match "^db-" $labels.instance }}database{{ end }}', "database"),
        (
            '{{ stripPort $labels.instance }} {{ stripDomain "db-1.example.com:80" }}',
            "db-1 db-1:80",
        ),
        ("{{ if gt $value 10.0 }}high{{ else if gt $value 1.0 }}mid{{ else }}low{{ end }}", "mid"),
        (
            "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
            "instance=db-1:9100;job=node;",
        ),
        ("{{ range $labels }}{{ . }},{{ end }}", "db-1:9100,node,"),
        ("{{ $x := 2 }}{{ $x }}{{ $x = 3 }}{{ $x }}", "23"),
        ("{{ with $labels.job }}job is {{ . }}{{ end }}", "job is node"),
        ("{{ with $labels.nope }}x{{ else }}none{{ end }}", "none"),
        ('{{- /* a comment */ -}}  a  {{- " b" -}}  ', "a b"),
        (
            '{{ len "abc" }} {{ index $labels "job" }} {{ and 1 0 }} {{ or 0 2 }} {{ not true }}',
            "3 node 0 2 false",
        ),
        ('{{ eq $labels.job "node" "x" }} {{ ne 1 2 }} {{ le 2 2 }}', "true true true"),
        ("{{ externalURL }} {{ pathPrefix }}", "https://prom.example.com/prometheus /prometheus"),
        ('{{ parseDuration "1h30m" }} {{ "a" | printf "%s-%s" "b" }}', "5400 b-a"),
        ("{{ range $i, $e := args 1 2 }}{{ $i }}:{{ $e }} {{ end }}", "arg0:1 arg1:2 "),
    ],
)
def test_renders_as_prometheus(text: str, expected: str) -> None:
    assert render(text, {"instance": "db-1:9100", "job": "node"}, 1.5) == expected


def test_query_pipelines() -> None:
    def query(expression: str) -> list[Sample]:
        assert expression == 'up{job="node"}'
        return [Sample({"instance": "b", "__value__": "x"}, 0.0), Sample({"instance": "a"}, 1234.0)]

    text = (
        '{{ with query "up{job=\\"node\\"}" }}{{ . | first | label "instance" }} '
        '{{ range sortByLabel "instance" . }}{{ .Labels.instance }}={{ .Value | humanize }} '
        "{{ end }}{{ . | first | strvalue }}{{ end }}"
    )
    assert render(text, query=query) == "b a=1.234k b=0 x"
    with pytest.raises(TemplateError, match="first\\(\\) called on vector with no elements"):
        render('{{ query "nothing" | first }}', query=lambda q: [])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Instance {{ $label.foo }} down", 'template: __alert_Test:1: undefined variable "$label"'),
        ("{{ if }}", "missing value for command"),
        ("x\n{{ end }}", "template: __alert_Test:2: unexpected {{end}}"),
        ("{{ nosuch 1 }}", 'function "nosuch" not defined'),
        ("{{ .X", "unclosed action"),
        ("{{ if 1 }}x", "unexpected EOF"),
        ("{{ break }}", "{{break}} outside {{range}}"),
        ("{{ $x = 1 }}", 'undefined variable "$x"'),
        ("{{ 1 2 }}", None),  # parses; fails when run
    ],
)
def test_parse_errors_read_like_gos(text: str, message: str | None) -> None:
    if message is None:
        Template("__alert_Test", text)
        return
    with pytest.raises(TemplateError, match=re.escape(message)):
        Template("__alert_Test", text)


def test_run_errors_name_the_template() -> None:
    with pytest.raises(TemplateError, match="can't give argument to non-function 1"):
        render("{{ 1 2 }}")
    with pytest.raises(TemplateError, match="error calling humanize"):
        render('{{ humanize "abc" }}')
    with pytest.raises(TemplateError, match="can't evaluate field X in type float64"):
        render("{{ $value.X }}")
