"""POST /api/v1/write against the real server: 204s, 400s that name the problem, no 5xx."""

from __future__ import annotations

import time

import cramjam
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import WRITE_HEADERS, Server, snappy_body, write_request
from watchkeeper.ingest.proto import remote_decode_pb2

NOW = int(time.time() * 1000)


def _post(
    client: httpx.Client, body: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return client.post("/api/v1/write", content=body, headers=headers or WRITE_HEADERS)


def _export(client: httpx.Client, selector: str) -> list[str]:
    response = client.get("/api/v1/export", params={"match[]": selector})
    assert response.status_code == 200
    return [line for line in response.text.splitlines() if line]


def test_valid_write_is_204_and_readable(shared_server: Server) -> None:
    with shared_server.client() as client:
        body = snappy_body(write_request([({"__name__": "rw_ok", "job": "a"}, [(NOW, 1.25)])]))
        response = _post(client, body)
        assert response.status_code == 204, response.text
        (line,) = _export(client, "rw_ok")
        assert '"values":[1.25]' in line and f'"timestamps":[{NOW}]' in line


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([(b"", b"x"), (b"__name__", b"rw_bad1")], "empty label name"),
        ([(b"__name__", b"rw_bad2"), (b"a", b"1"), (b"a", b"2")], 'duplicate label name: "a"'),
        ([(b"__name__", b"rw_bad3"), (b"job", b"\xc3\x28")], "invalid UTF-8 in label"),
        ([(b"job", b"rw_bad4")], "missing metric name"),
        ([(b"__name__", b""), (b"job", b"rw_bad5")], "missing metric name"),
        ([], "empty label set"),
    ],
)
def test_bad_series_get_400_naming_the_problem_and_the_rest_is_stored(
    shared_server: Server, labels: list[tuple[bytes, bytes]], message: str
) -> None:
    request = remote_decode_pb2.WriteRequest()
    bad = request.timeseries.add()
    for name, value in labels:
        bad.labels.add(name=name, value=value)
    bad.samples.add(timestamp=NOW, value=1.0)
    good = request.timeseries.add()
    marker = f"rw_kept_{abs(hash(message)) % 10**8}"
    good.labels.add(name=b"__name__", value=marker.encode())
    good.samples.add(timestamp=NOW, value=2.0)
    with shared_server.client() as client:
        response = _post(client, snappy_body(request.SerializeToString()))
        assert response.status_code == 400
        assert message in response.text
        assert "rejected 1 of 2 samples" in response.text
        assert len(_export(client, marker)) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"definitely not snappy", "snappy"),
        (bytes(cramjam.snappy.compress_raw(b"\x0a\x05\x0a\x03")), "protobuf: cannot decode"),
        (b"", "snappy: corrupt input: empty body"),
    ],
)
def test_unusable_bodies_get_400(shared_server: Server, body: bytes, message: str) -> None:
    with shared_server.client() as client:
        response = _post(client, body)
        assert response.status_code == 400
        assert message in response.text


def test_out_of_order_and_duplicates_follow_prometheus(shared_server: Server) -> None:
    labels = {"__name__": "rw_order"}
    with shared_server.client() as client:
        assert (
            _post(client, snappy_body(write_request([(labels, [(NOW, 1.0)])]))).status_code == 204
        )
        # the same sample again (a retry) is fine
        assert (
            _post(client, snappy_body(write_request([(labels, [(NOW, 1.0)])]))).status_code == 204
        )
        response = _post(client, snappy_body(write_request([(labels, [(NOW, 9.0)])])))
        assert response.status_code == 400 and "duplicate sample for timestamp" in response.text
        response = _post(client, snappy_body(write_request([(labels, [(NOW - 1000, 1.0)])])))
        assert response.status_code == 400 and "out of order sample" in response.text


def test_remote_write_2_is_refused_with_415(shared_server: Server) -> None:
    headers = {
        **WRITE_HEADERS,
        "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
    }
    with shared_server.client() as client:
        response = _post(client, snappy_body(write_request([])), headers)
        assert response.status_code == 415
        assert "remote_write 2.0" in response.text


def test_limits_name_their_config_key(start_server) -> None:
    server = start_server(
        config="limits:\n  max_request_body_bytes: 2000\n  max_samples_per_request: 5\n"
        "  max_series_per_tenant: 2\n"
    )
    with server.client() as client:
        big = snappy_body(write_request([({"__name__": "x" * 5000}, [(NOW, 1.0)])]))
        response = _post(client, big + b"\0" * 3000)
        assert response.status_code == 400
        assert "limit limits.max_request_body_bytes (2000) exceeded" in response.text
        many = snappy_body(write_request([({"__name__": "m"}, [(NOW + i, 1.0) for i in range(6)])]))
        response = _post(client, many)
        assert response.status_code == 400
        assert "limit limits.max_samples_per_request (5) exceeded" in response.text
        three = write_request([({"__name__": f"s{i}"}, [(NOW, 1.0)]) for i in range(3)])
        response = _post(client, snappy_body(three))
        assert response.status_code == 400
        assert "limit limits.max_series_per_tenant (2) exceeded" in response.text
        series = client.get("/api/v1/series", params={"match[]": '{__name__=~"s.*"}'}).json()
        assert len(series["data"]) == 2
        metrics = client.get("/metrics").text
        counter = (
            'watchkeeper_rejected_requests_total{handler="remote_write",reason="body_too_large"}'
        )
        assert f"{counter} 1.0" in metrics


names = st.text(st.characters(codec="utf-8"), max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.one_of(
        st.binary(max_size=200),
        st.lists(
            st.tuples(
                st.lists(st.tuples(names, names), max_size=4),
                st.lists(st.tuples(st.integers(-(2**63), 2**63 - 1), st.floats()), max_size=3),
            ),
            max_size=4,
        ),
    )
)
def test_fuzz_over_http_never_5xx(shared_server: Server, data) -> None:
    if isinstance(data, bytes):
        bodies = [data, snappy_body(data)]
    else:
        request = remote_decode_pb2.WriteRequest()
        for labels, samples in data:
            ts = request.timeseries.add()
            for name, value in labels:
                ts.labels.add(
                    name=("fz_" + name).encode() if name == "__name__" else name.encode(),
                    value=value.encode(),
                )
            for timestamp, value in samples:
                ts.samples.add(timestamp=timestamp, value=value)
        bodies = [snappy_body(request.SerializeToString())]
    with shared_server.client() as client:
        for body in bodies:
            response = _post(client, body)
            assert response.status_code in (204, 400), response.text
    assert shared_server.process is not None and shared_server.process.poll() is None
