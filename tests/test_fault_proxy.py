"""Tests of the fault proxy: each fault is seen by a real requests client as intended."""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from fault_proxy import FaultProxy

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = (2, 5)


class _UpstreamHandler(BaseHTTPRequestHandler):
    """A tiny JSON back end: /api/health, /api/users (GET, POST), /echo, /status/<code>."""

    protocol_version = "HTTP/1.1"
    received = []  # (method, path, body) of every POST, PUT and DELETE that reached it

    def log_message(self, format, *args):
        pass

    def _reply(self, status, obj, extra_headers=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra_headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        if self.path == "/api/health":
            self._reply(200, {"status": "healthy", "mongo_available": False})
        elif self.path == "/api/users":
            self._reply(200, [{"id": str(n), "email": f"user{n}@example.com"} for n in range(50)])
        elif self.path.startswith("/status/"):
            status = int(self.path.split("/")[2])
            self._reply(status, {"detail": f"status {status}"}, [("X-Upstream", "yes")])
        else:
            self._echo()

    def do_HEAD(self):
        self._reply(200, {"status": "healthy"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.received.append((self.command, self.path, body))
        if self.path == "/api/users":
            self._reply(201, {"id": "new", **json.loads(body)})
        else:
            self._echo(body)

    do_PUT = do_DELETE = do_POST

    def _echo(self, body=b""):
        self._reply(200, {
            "method": self.command,
            "path": self.path,
            "authorization": self.headers.get("Authorization"),
            "content_type": self.headers.get("Content-Type"),
            "body": body.decode(),
        })


@pytest.fixture(scope="module")
def upstream_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _UpstreamHandler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(upstream_url):
    with FaultProxy(upstream_url) as running:
        yield running


def _poll(condition, deadline_seconds=5.0, interval=0.01):
    """Wait until condition() is true or the deadline passes; return its last value."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# --- pass-through -----------------------------------------------------------------------------

def test_pass_through_keeps_status_body_and_headers(proxy, upstream_url):
    direct = requests.get(upstream_url + "/api/users", timeout=TIMEOUT)
    via_proxy = requests.get(proxy.url + "/api/users", timeout=TIMEOUT)
    assert via_proxy.status_code == 200
    assert via_proxy.content == direct.content
    assert via_proxy.headers["Content-Type"] == "application/json"
    assert int(via_proxy.headers["Content-Length"]) == len(direct.content)

    missing = requests.get(proxy.url + "/status/404", timeout=TIMEOUT)
    assert missing.status_code == 404
    assert missing.json() == {"detail": "status 404"}
    assert missing.headers["X-Upstream"] == "yes"
    assert requests.get(proxy.url + "/status/500", timeout=TIMEOUT).status_code == 500


def test_pass_through_forwards_method_query_body_and_auth(proxy):
    answer = requests.put(proxy.url + "/api/customers/abc?user_id=u1&x=%20y",
                          json={"money_given": 1.5}, headers={"Authorization": "Bearer t0ken"},
                          timeout=TIMEOUT)
    assert answer.json() == {
        "method": "PUT",
        "path": "/api/customers/abc?user_id=u1&x=%20y",
        "authorization": "Bearer t0ken",
        "content_type": "application/json",
        "body": '{"money_given": 1.5}',
    }
    created = requests.post(proxy.url + "/api/users", json={"email": "a@b.c", "pin": "1234"},
                            timeout=TIMEOUT)
    assert created.status_code == 201
    assert created.json() == {"id": "new", "email": "a@b.c", "pin": "1234"}
    head = requests.head(proxy.url + "/api/health", timeout=TIMEOUT)
    assert head.status_code == 200 and head.content == b""


def test_a_request_cut_off_mid_body_never_reaches_the_upstream(proxy):
    # A sender killed while sending: headers promise 100 bytes, 10 arrive, then the connection ends.
    host, port = urlsplit(proxy.url).hostname, urlsplit(proxy.url).port
    with socket.create_connection((host, port), timeout=5) as sender:
        sender.sendall(b"PUT /cut-off HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"{" * 10)
    assert _poll(lambda: proxy.requests_seen == 1) and _poll(lambda: proxy.open_connections == 0)
    whole = requests.put(proxy.url + "/whole", data=b"{}", timeout=TIMEOUT)
    assert whole.status_code == 200
    paths = [path for _method, path, _body in _UpstreamHandler.received]
    assert "/whole" in paths and "/cut-off" not in paths


def test_keep_alive_connection_is_reused(proxy):
    with requests.Session() as session:
        for _ in range(3):
            assert session.get(proxy.url + "/api/health", timeout=TIMEOUT).status_code == 200
        assert proxy.requests_seen == 3
        assert proxy.open_connections == 1


def test_unreachable_upstream_answers_502():
    with FaultProxy("http://127.0.0.1:9") as dead_end:
        answer = requests.get(dead_end.url + "/api/health", timeout=TIMEOUT)
    assert answer.status_code == 502
    assert answer.headers["Content-Type"].startswith("text/html")


# --- each fault kind --------------------------------------------------------------------------

@pytest.mark.parametrize("status", [502, 503])
def test_error_status_is_an_html_page(proxy, status):
    proxy.set_fault(str(status))
    answer = requests.get(proxy.url + "/api/users", timeout=TIMEOUT)
    assert answer.status_code == status
    assert answer.headers["Content-Type"].startswith("text/html")
    assert answer.text.startswith("<!DOCTYPE html>")
    with pytest.raises(ValueError):
        answer.json()


def test_latency_delays_then_forwards(proxy):
    proxy.set_fault("latency", latency=0.3)
    started = time.monotonic()
    answer = requests.get(proxy.url + "/api/health", timeout=TIMEOUT)
    assert time.monotonic() - started >= 0.3
    assert answer.json()["status"] == "healthy"


def test_latency_combines_with_another_fault(proxy):
    proxy.set_fault("503", latency=0.3)
    started = time.monotonic()
    answer = requests.get(proxy.url + "/api/health", timeout=TIMEOUT)
    assert time.monotonic() - started >= 0.3
    assert answer.status_code == 503


def test_truncated_sends_original_length_and_half_the_body(proxy, upstream_url):
    full = requests.get(upstream_url + "/api/users", timeout=TIMEOUT).content
    proxy.set_fault("truncated")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(proxy.url + "/api/users", timeout=TIMEOUT)

    # http.client keeps the bytes that did arrive; requests would drop the last read.
    address = urlsplit(proxy.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=5)
    connection.request("GET", "/api/users")
    answer = connection.getresponse()
    assert answer.status == 200
    assert int(answer.getheader("Content-Length")) == len(full)
    with pytest.raises(http.client.IncompleteRead) as caught:
        answer.read()
    connection.close()
    assert caught.value.partial == full[: len(full) // 2]


def test_reset_is_a_connection_reset(proxy):
    proxy.set_fault("reset")
    with pytest.raises(requests.exceptions.ConnectionError) as caught:
        requests.get(proxy.url + "/api/health", timeout=TIMEOUT)
    assert "ConnectionResetError" in repr(caught.value)


def test_not_json_is_html_labelled_json(proxy):
    proxy.set_fault("not_json")
    answer = requests.get(proxy.url + "/api/users", timeout=TIMEOUT)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    with pytest.raises(requests.exceptions.JSONDecodeError):
        answer.json()


def test_huge_is_valid_json_of_the_asked_size(proxy):
    proxy.set_fault("huge", huge_bytes=2 * 1024 * 1024)
    answer = requests.get(proxy.url + "/api/users", timeout=TIMEOUT)
    assert answer.status_code == 200
    assert "Content-Length" not in answer.headers
    assert 1.9 * 1024 * 1024 < len(answer.content) <= 2 * 1024 * 1024
    assert isinstance(json.loads(answer.content), list)


def test_huge_stops_when_the_client_leaves(proxy):
    proxy.set_fault("huge", huge_bytes=100 * 1024 ** 3)
    with requests.get(proxy.url + "/api/users", timeout=TIMEOUT, stream=True) as answer:
        read = 0
        for piece in answer.iter_content(64 * 1024):
            read += len(piece)
            if read >= 1024 * 1024:
                break
    assert _poll(lambda: proxy.open_connections == 0, deadline_seconds=2), "streams to nobody"
    proxy.clear()
    assert requests.get(proxy.url + "/api/health", timeout=TIMEOUT).status_code == 200


def test_hang_never_answers_until_cleared(proxy):
    proxy.set_fault("hang")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(proxy.url + "/api/health", timeout=(2, 0.3))

    outcome = {}

    def waiting_client():
        outcome["answer"] = requests.get(proxy.url + "/api/health", timeout=TIMEOUT)

    client = threading.Thread(target=waiting_client)
    client.start()
    assert _poll(lambda: proxy.requests_seen == 2)
    client.join(timeout=0.2)
    assert client.is_alive(), "a hanging request was answered"
    proxy.clear()
    client.join(timeout=5)
    assert outcome["answer"].json()["status"] == "healthy"


def test_hang_for_seconds_then_answers_like_a_cold_start(proxy):
    proxy.set_fault("hang", seconds=0.5)
    started = time.monotonic()
    answer = requests.get(proxy.url + "/api/health", timeout=TIMEOUT)
    assert answer.status_code == 200
    assert 0.4 <= time.monotonic() - started < 3


def test_stop_is_prompt_with_hanging_and_idle_clients(upstream_url):
    proxy = FaultProxy(upstream_url).start()
    idle = requests.Session()
    assert idle.get(proxy.url + "/api/health", timeout=TIMEOUT).status_code == 200
    proxy.set_fault("hang")
    errors = []

    def hanging_client():
        try:
            requests.get(proxy.url + "/api/health", timeout=(2, 30))
        except requests.exceptions.RequestException as error:
            errors.append(error)

    clients = [threading.Thread(target=hanging_client) for _ in range(5)]
    for client in clients:
        client.start()
    assert _poll(lambda: proxy.requests_seen == 6)
    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 1.5
    for client in clients:
        client.join(timeout=5)
    assert len(errors) == 5
    assert _poll(lambda: proxy.open_connections == 0)
    idle.close()


# --- scope of a fault -------------------------------------------------------------------------

def test_count_applies_to_the_next_n_requests_only(proxy):
    proxy.set_fault("503", count=2)
    statuses = [requests.get(proxy.url + "/api/health", timeout=TIMEOUT).status_code
                for _ in range(4)]
    assert statuses == [503, 503, 200, 200]


def test_seconds_expire(proxy):
    proxy.set_fault("503", seconds=0.4)
    assert requests.get(proxy.url + "/api/health", timeout=TIMEOUT).status_code == 503
    assert _poll(lambda: requests.get(proxy.url + "/api/health", timeout=TIMEOUT).status_code
                 == 200, deadline_seconds=3)


def test_path_prefix_limits_the_fault_and_its_count(proxy):
    proxy.set_fault("503", path_prefix="/api/users", count=1)
    assert requests.get(proxy.url + "/api/health", timeout=TIMEOUT).status_code == 200
    assert requests.get(proxy.url + "/api/users", timeout=TIMEOUT).status_code == 503
    assert requests.get(proxy.url + "/api/users", timeout=TIMEOUT).status_code == 200


def test_clear_passes_through_again(proxy):
    proxy.set_fault("503")
    assert requests.get(proxy.url + "/api/health", timeout=TIMEOUT).status_code == 503
    proxy.clear()
    assert requests.get(proxy.url + "/api/health", timeout=TIMEOUT).status_code == 200


def test_unknown_kind_is_refused(proxy):
    with pytest.raises(ValueError):
        proxy.set_fault("teapot")


# --- concurrency ------------------------------------------------------------------------------

def test_parallel_requests_are_delayed_not_serialised(proxy):
    proxy.set_fault("latency", latency=0.5)

    def timed_get(_):
        started = time.monotonic()
        answer = requests.get(proxy.url + "/api/users", timeout=TIMEOUT)
        return answer.status_code, time.monotonic() - started

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(timed_get, range(20)))
    elapsed = time.monotonic() - started
    assert all(status == 200 and took >= 0.5 for status, took in results)
    assert elapsed < 5  # one after another they would take 10 s
    assert proxy.requests_seen == 20


# --- in front of the demo back end ------------------------------------------------------------

@pytest.fixture
def demo_backend_url():
    if not (REPO / "sleepguard" / "demo_backend.py").exists():
        pytest.skip("sleepguard/demo_backend.py is not written yet")
    process = subprocess.Popen(
        [sys.executable, "-m", "sleepguard.demo_backend", "--port", "0"],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://"), f"demo back end printed {url!r}"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def test_in_front_of_the_demo_backend(demo_backend_url):
    with FaultProxy(demo_backend_url) as proxy, requests.Session() as session:
        health = session.get(proxy.url + "/api/health", timeout=TIMEOUT)
        assert health.status_code == 200 and health.json()["status"] == "healthy"
        created = session.post(proxy.url + "/api/users",
                               json={"email": "owner@example.com", "pin": "8429"},
                               timeout=TIMEOUT)
        assert created.status_code == 201
        users = session.get(proxy.url + "/api/users", timeout=TIMEOUT)
        assert [user["email"] for user in users.json()] == ["owner@example.com"]
        missing = session.get(proxy.url + "/api/users/nobody@example.com", timeout=TIMEOUT)
        assert missing.status_code == 404
        proxy.set_fault("503", path_prefix="/api/users", count=1)
        assert session.get(proxy.url + "/api/users", timeout=TIMEOUT).status_code == 503
        assert session.get(proxy.url + "/api/users", timeout=TIMEOUT).json() == users.json()
