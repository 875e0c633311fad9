"""The Prometheus query API on the real server: result shapes written byte for byte as
Prometheus writes them, parameters, limits, and Prometheus' error texts and status codes."""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Any

import httpx
import pytest

from tests.conftest import WRITE_HEADERS, Server, snappy_body, write_request

T0 = (int(time.time()) - 3600) * 1000  # whole seconds, well inside retention
S0 = T0 // 1000


@pytest.fixture(scope="module")
def loaded(shared_server: Server) -> Server:
    request = write_request(
        [
            (
                {"__name__": "qa_up", "job": "a"},
                [(T0, 1.0), (T0 + 15_000, 2.0), (T0 + 30_000, 3.0)],
            ),
            ({"__name__": "qa_up", "job": "b"}, [(T0, 0.5), (T0 + 30_000, 1e-7)]),
            ({"__name__": "qa_up", "job": "c<&>"}, [(T0 + 30_000, 1e21)]),
        ]
    )
    with shared_server.client() as client:
        response = client.post("/api/v1/write", content=snappy_body(request), headers=WRITE_HEADERS)
        assert response.status_code == 204, response.text
    return shared_server


def _get(server: Server, path: str, **params: Any) -> httpx.Response:
    with server.client() as client:
        return client.get(path, params=params)


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["status"] == "success"
    return body


def test_instant_vector_is_written_as_prometheus_writes_it(loaded: Server) -> None:
    response = _get(loaded, "/api/v1/query", query='qa_up{job="a"}', time=S0 + 30.5)
    assert response.text == (
        '{"status":"success","data":{"resultType":"vector","result":['
        f'{{"metric":{{"__name__":"qa_up","job":"a"}},"value":[{S0 + 30}.500,"3"]}}]}}}}'
    )
    body = _ok(_get(loaded, "/api/v1/query", query="qa_up", time=S0 + 30))
    assert body["data"]["resultType"] == "vector"
    assert body["data"]["result"] == [
        {"metric": {"__name__": "qa_up", "job": "a"}, "value": [S0 + 30, "3"]},
        {"metric": {"__name__": "qa_up", "job": "b"}, "value": [S0 + 30, "1e-07"]},
        {"metric": {"__name__": "qa_up", "job": "c<&>"}, "value": [S0 + 30, "1e+21"]},
    ]
    assert "warnings" not in body and "infos" not in body
    # Go's encoder escapes <, > and & in strings
    assert (
        '"job":"c\\u003c\\u0026\\u003e"'
        in _get(loaded, "/api/v1/query", query="qa_up", time=S0 + 30).text
    )


def test_vector_keeps_the_order_the_query_gives(loaded: Server) -> None:
    body = _ok(_get(loaded, "/api/v1/query", query="sort_desc(qa_up)", time=S0 + 1))
    assert [s["value"][1] for s in body["data"]["result"]] == ["1", "0.5"]


def test_range_query_matrix(loaded: Server) -> None:
    for step in ("15s", "15", "15.0"):
        response = _get(
            loaded,
            "/api/v1/query_range",
            query='qa_up{job="a"}',
            start=S0,
            end=S0 + 30,
            step=step,
        )
        assert response.text == (
            '{"status":"success","data":{"resultType":"matrix","result":['
            f'{{"metric":{{"__name__":"qa_up","job":"a"}},"values":'
            f'[[{S0},"1"],[{S0 + 15},"2"],[{S0 + 30},"3"]]}}]}}}}'
        )
    # sub-second steps keep milliseconds as three digits
    body = _ok(
        _get(
            loaded,
            "/api/v1/query_range",
            query='qa_up{job="b"}',
            start=S0,
            end=S0 + 1,
            step="0.25",
        )
    )
    stamps = [point[0] for point in body["data"]["result"][0]["values"]]
    assert stamps == [S0, S0 + 0.25, S0 + 0.5, S0 + 0.75, S0 + 1]


def test_scalar_and_string_results(loaded: Server) -> None:
    response = _get(loaded, "/api/v1/query", query="time()", time="1700000000.123")
    assert response.text == (
        '{"status":"success","data":{"resultType":"scalar",'
        '"result":[1700000000.123,"1700000000.123"]}}'
    )
    # a scalar's value is never written with an exponent
    tiny = _ok(_get(loaded, "/api/v1/query", query="0.0000001", time=1))
    assert tiny["data"]["result"] == [1, "0.0000001"]
    string = _ok(_get(loaded, "/api/v1/query", query='"a<b"', time=2.5))
    assert string["data"] == {"resultType": "string", "result": [2.5, "a<b"]}
    # a range query of a scalar is a matrix with an empty label set
    ranged = _ok(_get(loaded, "/api/v1/query_range", query="1", start=10, end=20, step=10))
    assert ranged["data"] == {
        "resultType": "matrix",
        "result": [{"metric": {}, "values": [[10, "1"], [20, "1"]]}],
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-11-14T22:13:20Z", 1_700_000_000),
        ("2023-11-14T22:13:20.25Z", 1_700_000_000.25),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000),
        ("1700000000", 1_700_000_000),
        ("1700000000.5", 1_700_000_000.5),
    ],
)
def test_time_formats(loaded: Server, value: str, expected: float) -> None:
    body = _ok(_get(loaded, "/api/v1/query", query="time()", time=value))
    assert body["data"]["result"][0] == expected


def test_time_defaults_to_now(loaded: Server) -> None:
    before = time.time()
    body = _ok(_get(loaded, "/api/v1/query", query="time()"))
    after = time.time()
    assert before - 0.001 <= body["data"]["result"][0] <= after + 0.001


def test_post_form_encoded(loaded: Server) -> None:
    with loaded.client() as client:
        instant = client.post("/api/v1/query", data={"query": 'qa_up{job="a"}', "time": S0 + 15})
        ranged = client.post(
            "/api/v1/query_range",
            data={"query": 'qa_up{job="a"}', "start": S0, "end": S0 + 15, "step": "15s"},
        )
        formatted = client.post("/api/v1/format_query", data={"query": "sum(x)by(a)"})
        parsed = client.post("/api/v1/parse_query", data={"query": "x"})
        # as in Go's Request.FormValue, the body's value wins over the URL's
        both = client.post("/api/v1/query?query=1&time=5", data={"query": "2"})
    assert _ok(instant)["data"]["result"][0]["value"] == [S0 + 15, "2"]
    assert _ok(ranged)["data"]["result"][0]["values"] == [[S0, "1"], [S0 + 15, "2"]]
    assert _ok(formatted)["data"] == "sum by (a) (x)"
    assert _ok(parsed)["data"]["type"] == "vectorSelector"
    assert _ok(both)["data"]["result"] == [5, "2"]


def test_limit_truncates_with_prometheus_warning(loaded: Server) -> None:
    body = _ok(_get(loaded, "/api/v1/query", query="qa_up", time=S0 + 30, limit=2))
    assert [s["metric"]["job"] for s in body["data"]["result"]] == ["a", "b"]
    assert body["warnings"] == ["results truncated due to limit"]
    exact = _ok(_get(loaded, "/api/v1/query", query="qa_up", time=S0 + 30, limit=3))
    assert len(exact["data"]["result"]) == 3 and "warnings" not in exact
    unlimited = _ok(_get(loaded, "/api/v1/query", query="qa_up", time=S0 + 30, limit=0))
    assert len(unlimited["data"]["result"]) == 3
    ranged = _ok(
        _get(loaded, "/api/v1/query_range", query="qa_up", start=S0, end=S0 + 30, step=15, limit=1)
    )
    assert len(ranged["data"]["result"]) == 1
    assert ranged["warnings"] == ["results truncated due to limit"]


def test_lookback_delta_parameter(loaded: Server) -> None:
    # job b's newest sample before T0+20s is at T0: 20s back
    def jobs(**params: Any) -> list[str]:
        body = _ok(_get(loaded, "/api/v1/query", query="qa_up", time=S0 + 20, **params))
        return [s["metric"]["job"] for s in body["data"]["result"]]

    assert jobs() == ["a", "b"]
    assert jobs(lookback_delta="10s") == ["a"]
    assert jobs(lookback_delta="30") == ["a", "b"]


def test_stats(loaded: Server) -> None:
    body = _ok(_get(loaded, "/api/v1/query", query="qa_up", time=S0 + 30, stats="true"))
    timings = body["data"]["stats"]["timings"]
    assert set(timings) == {"evalTotalTime", "execQueueTime", "execTotalTime"}
    assert 0 < timings["evalTotalTime"] <= timings["execTotalTime"] < 10
    assert "warnings" not in body
    odd = _ok(_get(loaded, "/api/v1/query", query="qa_up", time=S0 + 30, stats="yes"))
    assert "stats" in odd["data"]
    assert odd["warnings"] == [
        'value "yes" for parameter "stats" is deprecated and will be rejected in the next '
        'major release, use "true" or "all"'
    ]
    assert "stats" not in _ok(_get(loaded, "/api/v1/query", query="1"))["data"]


def test_tenant_header_selects_the_data(loaded: Server) -> None:
    with loaded.client() as client:
        response = client.get(
            "/api/v1/query",
            params={"query": "qa_up", "time": S0 + 30},
            headers={"X-Scope-OrgID": "someone-else"},
        )
    assert _ok(response)["data"]["result"] == []


QUERY_ERRORS = [
    # (path, params, status, errorType, exact error)
    (
        "/api/v1/query",
        {"query": "qa_up", "time": "yesterday"},
        400,
        "bad_data",
        "invalid parameter \"time\": invalid time value for 'time': "
        'cannot parse "yesterday" to a valid timestamp',
    ),
    (
        "/api/v1/query",
        {"query": "qa_up", "limit": "x"},
        400,
        "bad_data",
        'invalid parameter "limit": strconv.Atoi: parsing "x": invalid syntax',
    ),
    (
        "/api/v1/query",
        {"query": "qa_up", "limit": "-1"},
        400,
        "bad_data",
        'invalid parameter "limit": limit must be non-negative',
    ),
    (
        "/api/v1/query",
        {"query": "qa_up", "timeout": "soon"},
        400,
        "bad_data",
        'invalid parameter "timeout": cannot parse "soon" to a valid duration',
    ),
    (
        "/api/v1/query",
        {"query": "qa_up", "lookback_delta": "far"},
        400,
        "bad_data",
        'error parsing lookback delta duration: cannot parse "far" to a valid duration',
    ),
    (
        "/api/v1/query_range",
        {"query": "qa_up", "end": "10", "step": "1"},
        400,
        "bad_data",
        'invalid parameter "start": cannot parse "" to a valid timestamp',
    ),
    (
        "/api/v1/query_range",
        {"query": "qa_up", "start": "20", "end": "10", "step": "1"},
        400,
        "bad_data",
        'invalid parameter "end": end timestamp must not be before start time',
    ),
    (
        "/api/v1/query_range",
        {"query": "qa_up", "start": "10", "end": "20", "step": "0"},
        400,
        "bad_data",
        'invalid parameter "step": zero or negative query resolution step widths are not '
        "accepted. Try a positive integer",
    ),
    (
        "/api/v1/query_range",
        {"query": "qa_up", "start": "10", "end": "20", "step": "-5s"},
        400,
        "bad_data",
        'invalid parameter "step": cannot parse "-5s" to a valid duration',
    ),
    (
        "/api/v1/query_range",
        {"query": "qa_up", "start": "10", "end": "20", "step": "-5"},
        400,
        "bad_data",
        'invalid parameter "step": zero or negative query resolution step widths are not '
        "accepted. Try a positive integer",
    ),
    (
        "/api/v1/query_range",
        {"query": "qa_up", "start": "0", "end": "11001", "step": "1"},
        400,
        "bad_data",
        "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the "
        "query resolution (?step=XX)",
    ),
    (
        "/api/v1/query_range",
        {"query": "qa_up[5m]", "start": "0", "end": "10", "step": "1"},
        400,
        "bad_data",
        'invalid parameter "query": invalid expression type "range vector" for range query, '
        "must be Scalar or instant Vector",
    ),
    (
        "/api/v1/query",
        {"query": "qa_up", "timeout": "0s"},
        503,
        "timeout",
        "query timed out in query queue",
    ),
]


@pytest.mark.parametrize(("path", "params", "status", "error_type", "message"), QUERY_ERRORS)
def test_errors_are_prometheus_texts_and_codes(
    loaded: Server, path: str, params: dict[str, str], status: int, error_type: str, message: str
) -> None:
    response = _get(loaded, path, **params)
    assert response.status_code == status, response.text
    assert response.json() == {"status": "error", "errorType": error_type, "error": message}


@pytest.mark.parametrize("path", ["/api/v1/query", "/api/v1/format_query", "/api/v1/parse_query"])
@pytest.mark.parametrize("query", ["sum(", "", '{job=""}'])
def test_unparsable_queries_are_bad_data(loaded: Server, path: str, query: str) -> None:
    response = _get(loaded, path, query=query)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["errorType"] == "bad_data"
    assert (
        body["error"].startswith('invalid parameter "query": ') and "parse error" in body["error"]
    )


def test_eleven_thousand_points_are_allowed(loaded: Server) -> None:
    body = _ok(_get(loaded, "/api/v1/query_range", query="qa_none", start=0, end=11000, step=1))
    assert body["data"] == {"resultType": "matrix", "result": []}


def test_format_query(loaded: Server) -> None:
    response = _get(loaded, "/api/v1/format_query", query='sum(rate(x{b="1",a="2"}[5m]))by(job)')
    assert response.text == (
        '{"status":"success","data":"sum by (job) (rate(x{a=\\"2\\",b=\\"1\\"}[5m]))"}'
    )


def test_parse_query(loaded: Server) -> None:
    body = _ok(_get(loaded, "/api/v1/parse_query", query='rate(x{a="b"}[5m] @ 100)'))
    assert body["data"] == {
        "type": "call",
        "func": {"name": "rate", "argTypes": ["matrix"], "variadic": 0, "returnType": "vector"},
        "args": [
            {
                "type": "matrixSelector",
                "name": "x",
                "range": 300_000,
                "rangeExpr": None,
                "offset": 0,
                "offsetExpr": None,
                "matchers": [
                    {"name": "a", "value": "b", "type": "="},
                    {"name": "__name__", "value": "x", "type": "="},
                ],
                "timestamp": 100_000,
                "startOrEnd": None,
                "anchored": False,
                "smoothed": False,
            }
        ],
    }
    binary = _ok(_get(loaded, "/api/v1/parse_query", query="a * on (x) group_right b"))["data"]
    assert binary["type"] == "binaryExpr" and binary["op"] == "*"
    assert binary["matching"]["card"] == "one-to-many" and binary["matching"]["on"] is True
    aggregation = _ok(_get(loaded, "/api/v1/parse_query", query="topk(2, x)"))["data"]
    assert aggregation["param"] == {"type": "numberLiteral", "val": "2"}
    assert aggregation["grouping"] == [] and aggregation["without"] is False


def test_query_limits_are_422_naming_the_key(start_server) -> None:
    server = start_server(
        env={
            "WATCHKEEPER_QUERY__MAX_SAMPLES": "5",
            "WATCHKEEPER_QUERY__MAX_SERIES_PER_SELECTOR": "8",
            "WATCHKEEPER_QUERY__MAX_CONCURRENT": "3",
        }
    )
    request = write_request(
        [({"__name__": "many", "i": str(i)}, [(T0, float(i))]) for i in range(10)]
    )
    with server.client() as client:
        response = client.post("/api/v1/write", content=snappy_body(request), headers=WRITE_HEADERS)
        assert response.status_code == 204, response.text
        small = client.get("/api/v1/query", params={"query": 'many{i=~"[0-4]"}', "time": S0})
        assert len(_ok(small)["data"]["result"]) == 5
        for query, key in [('many{i=~"[0-7]"}', "query.max_samples"), ("many", "max_series")]:
            response = client.get("/api/v1/query", params={"query": query, "time": S0})
            assert response.status_code == 422, response.text
            body = response.json()
            assert body["status"] == "error" and body["errorType"] == "execution"
            assert key in body["error"]
        metrics = client.get("/metrics").text
    assert "watchkeeper_queries_running 0.0" in metrics
    assert "watchkeeper_queries_queued 0.0" in metrics


def test_promtool_reads_query_results(loaded: Server) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`)")
    instant = subprocess.run(
        [promtool, "query", "instant", f"--time={S0 + 30}", loaded.url, 'qa_up{job=~"a|b"}'],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert instant.stdout.splitlines() == [
        f'qa_up{{job="a"}} => 3 @[{S0 + 30}]',
        f'qa_up{{job="b"}} => 0.0000001 @[{S0 + 30}]',
    ]
    ranged = subprocess.run(
        [
            promtool,
            "query",
            "range",
            f"--start={S0}",
            f"--end={S0 + 30}",
            "--step=15s",
            loaded.url,
            'qa_up{job="a"}',
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert ranged.stdout.splitlines() == [
        'qa_up{job="a"} =>',
        f"1 @[{S0}]",
        f"2 @[{S0 + 15}]",
        f"3 @[{S0 + 30}]",
    ]
    failed = subprocess.run(
        [promtool, "query", "instant", loaded.url, "sum("],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert failed.returncode == 1
    assert 'query error: bad_data: invalid parameter "query": ' in failed.stderr
