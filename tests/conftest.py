"""Shared test helpers: a real watchkeeper server on a loopback port, and remote_write bodies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cramjam
import httpx
import pytest

from watchkeeper.ingest.proto import remote_pb2

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
WRITE_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_request(
    series: Sequence[tuple[dict[str, str], Sequence[tuple[int, float]]]],
) -> remote_pb2.WriteRequest:
    """A WriteRequest from (labels, [(timestamp ms, value), ...]); labels sorted by name."""
    request = remote_pb2.WriteRequest()
    for labels, samples in series:
        ts = request.timeseries.add()
        for name in sorted(labels):
            ts.labels.add(name=name, value=labels[name])
        for timestamp, value in samples:
            ts.samples.add(timestamp=timestamp, value=value)
    return request


def snappy_body(request: remote_pb2.WriteRequest | bytes) -> bytes:
    raw = request if isinstance(request, bytes) else request.SerializeToString()
    return bytes(cramjam.snappy.compress_raw(raw))


class ManagedProcess:
    """A child process with its output in `log_path`, stopped with SIGTERM (then SIGKILL)."""

    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, url: str, timeout: float) -> None:
        """Poll `url` until it answers 200; fail with the log if the process exits first."""
        assert self.process is not None
        name = Path(str(self.process.args[0])).name
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{name} not ready after {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Server(ManagedProcess):
    """`python -m watchkeeper serve` as a subprocess on a free loopback port."""

    def __init__(
        self, data_dir: Path, config: str | None = None, env: dict[str, str] | None = None
    ):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        self.args = [
            sys.executable,
            "-m",
            "watchkeeper",
            "serve",
            "--data-dir",
            str(data_dir),
            "--listen",
            f"127.0.0.1:{self.port}",
        ]
        if config is not None:
            config_path = data_dir.parent / f"{data_dir.name}-config.yml"
            config_path.write_text(config)
            self.args += ["--config", str(config_path)]
        self.env = {
            **os.environ,
            "WATCHKEEPER_SELF_MONITORING__ENABLED": "false",
            # servers run side by side in tests: each its own OTLP/gRPC port
            "WATCHKEEPER_OTLP__GRPC_LISTEN": "127.0.0.1:0",
            **(env or {}),
        }

    def start(self, timeout: float = 30.0) -> Server:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=log)
        self.wait_ready(f"{self.url}/-/ready", timeout)
        return self

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Factory: start_server(config=None, env=None, name="data") -> a running Server."""
    started: list[Server] = []

    def start(config: str | None = None, env: dict[str, str] | None = None, name: str = "data"):
        server = Server(tmp_path / name, config, env).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for a whole test module (tests must use their own metric names)."""
    server = Server(tmp_path_factory.mktemp("shared") / "data").start()
    yield server
    server.stop()


class WebhookSink:
    """An HTTP server on loopback that records every POST body by path (a webhook receiver);
    `status` is what it answers, with the body `answers` gives for the path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.status = 200
        # the body answered to a POST whose path contains the key (else none)
        self.answers: dict[str, bytes] = {}
        lock = threading.Lock()
        received = self.received
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with lock:
                    received.append((self.path, body))
                answer = next((a for part, a in sink.answers.items() if part in self.path), b"")
                self.send_response(sink.status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def do_PUT(self) -> None:  # recorded as "PUT <path>" (OpsGenie's updates)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with lock:
                    received.append((f"PUT {self.path}", body))
                self.send_response(sink.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 20.0) -> list[tuple[str, bytes]]:
        """The first `count` requests received, waiting for them as long as `timeout`."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.received) >= count, f"{len(self.received)} of {count}: {self.received}"
        return self.received[:count]

    def take(self) -> list[tuple[str, bytes]]:
        taken = sorted(self.received)
        self.received.clear()
        return taken
