"""The Prometheus metadata API's shapes, parameters and errors, on the real server."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import WRITE_HEADERS, Server, snappy_body, write_request
from watchkeeper.ingest.proto import remote_pb2

NOW = (int(time.time()) - 600) * 1000


@pytest.fixture(scope="module")
def loaded(shared_server: Server) -> Server:
    request = write_request(
        [
            (
                {"__name__": "api_requests_total", "code": "200", "job": "api"},
                [(NOW, 1.0), (NOW + 60_000, 2.0)],
            ),
            (
                {"__name__": "api_requests_total", "code": "500", "job": "api"},
                [(NOW + 120_000, 1.0)],
            ),
            ({"__name__": "api_up", "job": "db", "dotted.label": "ü"}, [(NOW, 1.0)]),
        ]
    )
    request.metadata.add(
        type=remote_pb2.MetricMetadata.COUNTER,
        metric_family_name="api_requests_total",
        help="Requests.",
        unit="",
    )
    with shared_server.client() as client:
        response = client.post("/api/v1/write", content=snappy_body(request), headers=WRITE_HEADERS)
        assert response.status_code == 204, response.text
    return shared_server


def _get(server: Server, path: str, **params: object) -> httpx.Response:
    with server.client() as client:
        return client.get(path, params=params)


def test_series(loaded: Server) -> None:
    body = _get(loaded, "/api/v1/series", **{"match[]": 'api_requests_total{code=~"5.."}'}).json()
    assert body == {
        "status": "success",
        "data": [{"__name__": "api_requests_total", "code": "500", "job": "api"}],
    }
    two = _get(
        loaded,
        "/api/v1/series",
        **{"match[]": ["api_up", '{__name__="api_requests_total",code="200"}']},
    )
    assert [s["__name__"] for s in two.json()["data"]] == ["api_requests_total", "api_up"]
    utf8 = _get(loaded, "/api/v1/series", **{"match[]": '{"dotted.label"="ü"}'}).json()
    assert utf8["data"] == [{"__name__": "api_up", "dotted.label": "ü", "job": "db"}]


def test_series_time_range_and_limit(loaded: Server) -> None:
    start, end = (NOW + 100_000) / 1000, (NOW + 130_000) / 1000
    body = _get(
        loaded, "/api/v1/series", **{"match[]": '{job="api"}', "start": start, "end": end}
    ).json()
    assert body["data"] == [{"__name__": "api_requests_total", "code": "500", "job": "api"}]
    limited = _get(loaded, "/api/v1/series", **{"match[]": '{job=~".+"}', "limit": 1}).json()
    assert len(limited["data"]) == 1 and limited["warnings"] == ["results truncated due to limit"]


def test_post_form_parameters(loaded: Server) -> None:
    with loaded.client() as client:
        response = client.post("/api/v1/series", data={"match[]": "api_up"})
    assert response.json()["data"] == [{"__name__": "api_up", "dotted.label": "ü", "job": "db"}]


def test_labels_and_values(loaded: Server) -> None:
    labels = _get(loaded, "/api/v1/labels", **{"match[]": '{job=~"api|db"}'}).json()
    assert labels == {"status": "success", "data": ["__name__", "code", "dotted.label", "job"]}
    values = _get(loaded, "/api/v1/label/code/values", **{"match[]": "api_requests_total"}).json()
    assert values["data"] == ["200", "500"]
    ranged = _get(
        loaded, "/api/v1/label/code/values", start=NOW / 1000, end=(NOW + 1000) / 1000
    ).json()
    assert ranged["data"] == ["200"]
    assert _get(loaded, "/api/v1/label/nope/values").json() == {"status": "success", "data": []}


def test_metadata_buildinfo_and_tsdb(loaded: Server) -> None:
    meta = _get(loaded, "/api/v1/metadata", metric="api_requests_total").json()
    assert meta["data"] == {
        "api_requests_total": [{"type": "counter", "help": "Requests.", "unit": ""}]
    }
    info = _get(loaded, "/api/v1/status/buildinfo").json()
    assert info["status"] == "success" and info["data"]["version"]
    tsdb = _get(loaded, "/api/v1/status/tsdb").json()["data"]
    assert tsdb["headStats"]["numSeries"] >= 3
    top = {row["name"]: row["value"] for row in tsdb["seriesCountByMetricName"]}
    assert top["api_requests_total"] == 2


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/v1/series", {}, "no match[] parameter provided"),
        ("/api/v1/series", {"match[]": "up{"}, 'invalid parameter "match[]"'),
        ("/api/v1/series", {"match[]": '{job=""}'}, "at least one non-empty matcher"),
        ("/api/v1/series", {"match[]": "up", "start": "yesterday"}, 'invalid parameter "start"'),
        (
            "/api/v1/labels",
            {"start": "20", "end": "10"},
            "end timestamp must not be before start time",
        ),
        ("/api/v1/labels", {"limit": "many"}, 'invalid parameter "limit"'),
        ("/api/v1/export", {}, "no match[] parameter provided"),
    ],
)
def test_errors_have_prometheus_shape(
    loaded: Server, path: str, params: dict[str, str], message: str
) -> None:
    response = _get(loaded, path, **params)
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error" and body["errorType"] == "bad_data"
    assert message in body["error"]


def test_own_metrics_are_exposed_and_stored(start_server) -> None:
    server = start_server(
        env={
            "WATCHKEEPER_SELF_MONITORING__ENABLED": "true",
            "WATCHKEEPER_SELF_MONITORING__INTERVAL": "1s",
        }
    )
    with server.client() as client:
        body = snappy_body(write_request([({"__name__": "x"}, [(NOW, 1.0)])]))
        assert client.post("/api/v1/write", content=body, headers=WRITE_HEADERS).status_code == 204
        assert client.get("/api/v1/query", params={"query": "sum("}).status_code == 400
        exposition = client.get("/metrics").text
        # each request is timed under its route, method and status code
        for labels in (
            'code="204",handler="/api/v1/write",method="POST"',
            'code="400",handler="/api/v1/query",method="GET"',
        ):
            assert f"watchkeeper_http_request_duration_seconds_count{{{labels}}} 1.0" in exposition
        for name in (
            "watchkeeper_ingested_samples_total",
            "watchkeeper_wal_fsync_duration_seconds_bucket",
            "watchkeeper_active_series",
            "watchkeeper_http_request_duration_seconds_bucket",
        ):
            assert name in exposition
        deadline = time.monotonic() + 15
        names: list[str] = []
        while time.monotonic() < deadline:
            names = client.get("/api/v1/label/__name__/values").json()["data"]
            if "watchkeeper_ingested_samples_total" in names:
                break
            time.sleep(0.3)
        assert "watchkeeper_ingested_samples_total" in names
        series = client.get(
            "/api/v1/series", params={"match[]": "watchkeeper_ingested_samples_total"}
        ).json()
        assert series["data"][0]["job"] == "watchkeeper"
