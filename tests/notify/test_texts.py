"""Alertmanager's default notification texts, and templated fields."""

from __future__ import annotations

import json

import pytest

from watchkeeper.alerting.notification import NotifyError, notification_data
from watchkeeper.model.alerts import Alert
from watchkeeper.notify import pagerduty, slack, texts

NOW = 1_800_000_000_000


def _data(*label_sets: dict[str, str], resolved: int = 0) -> object:
    alerts = [
        Alert(
            labels=tuple(sorted(labels.items())),
            annotations=(("summary", "disk <90%"),),
            starts_at_ms=NOW - 60_000,
            ends_at_ms=NOW - 1 if i < resolved else 0,
            generator_url="http://prom/graph",
        )
        for i, labels in enumerate(label_sets)
    ]
    return notification_data(
        "team.db", alerts, (("alertname", "Disk"),), "http://am", '{}:{alertname="Disk"}', NOW
    )


def test_subject_lists_group_values_then_other_common_values_alertname_first() -> None:
    data = _data(
        {"alertname": "Disk", "zone": "a", "job": "node", "instance": "1"},
        {"alertname": "Disk", "zone": "a", "job": "node", "instance": "2"},
    )
    assert texts.subject(data) == "[FIRING:2] Disk (node a)"  # type: ignore[arg-type]
    assert texts.sorted_pairs((("a", "1"), ("alertname", "X"))) == [("alertname", "X"), ("a", "1")]
    one = _data({"alertname": "Disk"}, resolved=1)
    assert texts.subject(one) == "[RESOLVED] Disk "  # type: ignore[arg-type]


def test_alert_list_and_link() -> None:
    data = _data({"alertname": "Disk", "job": "node"})
    assert texts.alert_list(data.alerts) == (  # type: ignore[attr-defined]
        "Labels:\n - alertname = Disk\n - job = node\nAnnotations:\n"
        " - summary = disk <90%\nSource: http://prom/graph\n"
    )
    # the receiver as template data holds it: QuoteMeta'd, then query-escaped
    assert texts.alertmanager_url(data) == "http://am/#/alerts?receiver=team%5C.db"  # type: ignore[arg-type]


def test_templated_fields_render_and_unknown_ones_fail_the_notification() -> None:
    data = _data({"alertname": "Disk", "job": "node"})
    body = json.loads(
        slack.payload(data, {"title": "{{ .CommonLabels.job }} {{ len .Alerts }}"})  # type: ignore[arg-type]
    )
    assert body["attachments"][0]["title"] == "node 1"
    assert body["attachments"][0]["color"] == "danger"
    # Alertmanager's named templates, and an unknown one failing the notification
    body = json.loads(
        slack.payload(data, {"title": '{{ template "slack.default.title" . }}!'})  # type: ignore[arg-type]
    )
    assert body["attachments"][0]["title"] == texts.subject(data) + "!"  # type: ignore[arg-type]
    with pytest.raises(NotifyError, match=r'slack_configs\.title: .*no template "nope"'):
        slack.payload(data, {"title": '{{ template "nope" . }}'})  # type: ignore[arg-type]


def test_template_files_and_alertmanagers_data_methods() -> None:
    """A `templates:` file's {{define}}, with .Alerts.Firing, .SortedPairs, .Remove, .Names,
    .Values and join, as Alertmanager's own templates use them."""
    files = (
        (
            "custom.tmpl",
            '{{ define "custom.title" }}{{ .Alerts.Firing | len }} firing: '
            '{{ (.CommonLabels.Remove .GroupLabels.Names).Values | join "," }}'
            "{{ range .CommonLabels.SortedPairs }} {{ .Name }}={{ .Value }}{{ end }}{{ end }}",
        ),
    )
    data = _data(
        {"alertname": "Disk", "job": "node", "zone": "a"},
        {"alertname": "Disk", "job": "node", "zone": "b"},
        resolved=1,
    )
    title = texts.render(
        '{{ template "custom.title" . }}',
        data,
        "title",
        texts.library_of(files),  # type: ignore[arg-type]
    )
    assert title == "1 firing: node alertname=Disk job=node"


def test_pagerduty_resolves_the_groups_incident() -> None:
    data = _data({"alertname": "Disk"}, resolved=1)
    body = json.loads(pagerduty.payload(data, {}, "key"))  # type: ignore[arg-type]
    assert body["event_action"] == "resolve"
    assert body["dedup_key"] == pagerduty.dedup_key('{}:{alertname="Disk"}')
    assert body["payload"]["custom_details"]["num_resolved"] == "1"
    assert texts.truncate("x" * 5, 3) == "xx…"


def test_html_fields_escape_what_the_template_prints_as_html_template_does() -> None:
    data = _data({"alertname": "Disk", "path": "<a&b> 'x'+\"y\""})
    text = (
        '<b>{{ .CommonLabels.path }}</b> {{ "<i>ok</i>" | safeHtml }} {{ template "__subject" . }}'
    )
    assert texts.render(text, data, "email_configs.html", html=True) == (  # type: ignore[arg-type]
        "<b>&lt;a&amp;b&gt; &#39;x&#39;&#43;&#34;y&#34;</b> <i>ok</i> "
        "[FIRING:1] Disk (&lt;a&amp;b&gt; &#39;x&#39;&#43;&#34;y&#34;)"
    )
    # the same field as plain text prints the values as they are
    assert texts.render("{{ .CommonLabels.path }}", data, "x") == "<a&b> 'x'+\"y\""  # type: ignore[arg-type]
