"""Container readiness waits for a slow health answer (glmverify.containers.PatientHttpWait).

SGLang's /health runs a one-token generation; on a loaded host it answered in over a second, and
testcontainers' stock HTTP wait gives each probe one second, so it never saw the 200. A local
server answering after 1.5 s stands in for that engine: the stock wait must time out, ours must not.
"""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from testcontainers.core.wait_strategies import HttpWaitStrategy

from glmverify.containers import PatientHttpWait

DELAY = 1.5


class _SlowHealth(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        time.sleep(DELAY)
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


class _Target:
    """What a wait strategy asks of a container: where its port is published."""

    def __init__(self, port: int):
        self.port = port

    def get_container_host_ip(self) -> str:
        return "127.0.0.1"

    def get_exposed_port(self, port: int) -> int:
        return self.port


@pytest.fixture(scope="module")
def slow_engine():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowHealth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield _Target(server.server_address[1])
    server.shutdown()


def test_stock_wait_gives_up_on_a_health_answer_slower_than_a_second(slow_engine):
    with pytest.raises(TimeoutError):
        HttpWaitStrategy(8000, "/health").for_status_code(200).with_startup_timeout(4).with_poll_interval(0.2) \
            .wait_until_ready(slow_engine)


def test_patient_wait_sees_the_slow_200(slow_engine):
    t0 = time.monotonic()
    PatientHttpWait(8000, "/health").for_status_code(200).with_startup_timeout(4).with_poll_interval(0.2) \
        .wait_until_ready(slow_engine)
    assert DELAY <= time.monotonic() - t0 < 4


def test_patient_wait_still_rejects_a_wrong_status(slow_engine):
    with pytest.raises(TimeoutError):
        PatientHttpWait(8000, "/missing").for_status_code(200).with_startup_timeout(2).with_poll_interval(0.2) \
            .wait_until_ready(slow_engine)
