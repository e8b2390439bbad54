"""Tests of the back-end client against the real demo back end, a fault proxy, and canned answers."""

import json
import socket
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import DemoBackend
from fault_proxy import FaultProxy
from helpers import RawServer, make_settings, seed_shop
from sleepguard.client import BackendClient, same_origin_redirect
from sleepguard.exceptions import AnswerTooLarge, BackendError, BackendRejected, BackendUnreachable, BadAnswer

SECRET_PIN = "918273"


@pytest.fixture
def proxy(demo_backend):
    """A fault proxy in front of a demo back end holding a small shop."""
    seed_shop(demo_backend.url, users=3, customers=2)
    with FaultProxy(demo_backend.url) as running:
        yield running


@pytest.fixture(scope="module")
def shared_proxy():
    """Like `proxy`, but one for the module: the many fault cases only read, so they can share it."""
    backend = DemoBackend()
    seed_shop(backend.url, users=3, customers=2)
    try:
        with FaultProxy(backend.url) as running:
            yield running
    finally:
        backend.stop()


def free_port():
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class CannedServer:
    """A real HTTP server on loopback answering each path with a fixed (status, content type, body)."""

    def __init__(self, answers):
        canned = answers
        self.hits = hits = []  # (method, path) of every request, in order

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append((self.command, self.path))
                status, content_type, body, *headers = canned[self.path.split("?")[0]]
                self.send_response(status)
                for name, value in (headers[0] if headers else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canned():
    """Factory: canned({path: (status, content type, body)}) → CannedServer, stopped afterwards."""
    servers = []

    def start(answers):
        servers.append(CannedServer(answers))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def as_json(value, status=200):
    return status, "application/json", json.dumps(value).encode()


# --- reads against the real demo back end ---

def test_api_read_puts_every_customer_under_its_owner_exactly(demo_backend, data_dir):
    shop = seed_shop(demo_backend.url, users=200, customers=10)
    with BackendClient(make_settings(data_dir, demo_backend.url)) as client:
        snapshot = client.read_snapshot()

    assert snapshot.counts() == {"users": 200, "customers": 2000, "orders": 2000}
    assert snapshot.meta["mode"] == "babs10" and snapshot.meta["backend_url"] == demo_backend.url
    read = snapshot.customers_by_email()
    assert set(read) == set(shop)
    for email, seeded in shop.items():
        assert {c["name"]: c for c in read[email]} == seeded["customers"], f"customers of {email} differ"
    assert {u["email"]: u["id"] for u in snapshot.users} == {email: s["id"] for email, s in shop.items()}


def test_snapshot_mode_round_trip_is_lossless(demo_backend, data_dir):
    shop = seed_shop(demo_backend.url, users=4, customers=3, pin_of=lambda i: f"{SECRET_PIN}{i}")
    settings = make_settings(data_dir, demo_backend.url, backend_mode="snapshot", api_token=demo_backend.token)
    with BackendClient(settings) as client:
        before = client.read_snapshot()
        assert before.meta["mode"] == "snapshot"
        assert before.customers_by_email().keys() == shop.keys()
        demo_backend.sleep_now()
        assert client.read_snapshot().counts()["users"] == 0
        client.put_admin_state(before.to_admin_state())
        after = client.read_snapshot()
        assert after.checksum() == before.checksum()
        assert client.signin("owner2@example.com", f"{SECRET_PIN}2") is True


def test_health_and_backup_status(demo_backend, data_dir):
    with BackendClient(make_settings(data_dir, demo_backend.url)) as client:
        body, latency = client.health()
        status = client.backup_status()
    assert body["status"] == "healthy" and 0 < latency < 5
    assert status["backup_triggers_count"] == 0 and status["last_backup"] is None


def test_an_empty_customer_list_is_read_twice(proxy, data_dir):
    with BackendClient(make_settings(data_dir, proxy.url)) as client:
        _, user, _ = client.create_user("lonely@example.com", SECRET_PIN)
        seen = proxy.requests_seen
        snapshot = client.read_snapshot()
    # The backup status (who saved last), 1 users list + 3 owners with customers + 2 reads for the one without
    # + the users list again (restart check).
    assert proxy.requests_seen - seen == 1 + 1 + 3 + 2 + 1
    assert snapshot.customers_by_email()["lonely@example.com"] == []


# --- faults: each is a BackendError with a clear reason, never a snapshot ---

FAULTS = [
    ("502", BackendUnreachable, "host answered 502 (asleep or restarting)"),
    ("503", BackendUnreachable, "host answered 503 (asleep or restarting)"),
    ("not_json", BadAnswer, "answer is not JSON (application/json)"),
    ("truncated", BadAnswer, "answer truncated: got "),
    ("reset", BackendUnreachable, "connection reset"),
    ("hang", BackendUnreachable, "timed out after 0.5 s"),
    ("huge", AnswerTooLarge, "over MAX_RESPONSE_BYTES (65536)"),
]


@pytest.mark.parametrize("path_prefix", ["/api/users", "/api/customers"])
@pytest.mark.parametrize("kind, error_class, reason", FAULTS, ids=[f[0] for f in FAULTS])
def test_each_fault_fails_the_whole_read(shared_proxy, data_dir, path_prefix, kind, error_class, reason):
    shared_proxy.set_fault(kind, path_prefix=path_prefix)
    settings = make_settings(data_dir, shared_proxy.url, read_timeout=0.5, retries=1, max_response_bytes=65536)
    started = time.monotonic()
    try:
        with BackendClient(settings) as client, pytest.raises(error_class) as caught:
            client.read_snapshot()
    finally:
        shared_proxy.clear()
    assert reason in str(caught.value)
    assert time.monotonic() - started < 5


def test_truncated_answer_says_how_much_arrived(proxy, data_dir):
    proxy.set_fault("truncated", path_prefix="/api/users")
    with BackendClient(make_settings(data_dir, proxy.url, retries=0)) as client, pytest.raises(BadAnswer) as caught:
        client.read_snapshot()
    got, of = str(caught.value).split("got ")[1].removesuffix(" bytes").split(" of ")
    assert 0 < int(got) < int(of)


def test_nobody_listening_is_unreachable(data_dir):
    settings = make_settings(data_dir, f"http://127.0.0.1:{free_port()}", retries=1)
    with BackendClient(settings) as client:
        with pytest.raises(BackendUnreachable, match="connection refused"):
            client.health()
        with pytest.raises(BackendUnreachable, match="connection refused"):
            client.read_snapshot()


def test_reads_are_retried_through_a_short_outage(proxy, data_dir):
    proxy.set_fault("503", path_prefix="/api/users", count=2)
    seen = proxy.requests_seen
    with BackendClient(make_settings(data_dir, proxy.url, retries=2)) as client:
        assert client.read_snapshot().counts()["users"] == 3
    # The backup status, the users list three times, three customer lists, and the users list again (restart check).
    assert proxy.requests_seen - seen == 1 + 3 + 3 + 1


def test_a_post_is_never_resent_after_it_went_out(proxy, data_dir):
    # A plain POST (sign-in) is never resent; the creating POSTs are, below, because their duplicate answer is safe.
    proxy.set_fault("503", path_prefix="/api/users", count=1)
    seen = proxy.requests_seen
    with BackendClient(make_settings(data_dir, proxy.url, retries=3)) as client:
        with pytest.raises(BackendUnreachable, match="503"):
            client.signin("once@example.com", SECRET_PIN)
    assert proxy.requests_seen - seen == 1


def test_a_create_whose_answer_was_lost_is_resent_and_says_so(proxy, data_dir):
    # The POST reaches the back end and creates the record; only its answer is cut off on the way back.
    with BackendClient(make_settings(data_dir, proxy.url, retries=2)) as client:
        assert client.create_user("first@example.com", SECRET_PIN)[::2] == ("created", False)
        proxy.set_fault("truncated", path_prefix="/api/users", count=1)
        outcome, user, retried = client.create_user("lost@example.com", SECRET_PIN)
        # The second try met our own first: "exists", and retried says so.
        assert (outcome, retried) == ("exists", True)
        assert client.signin("lost@example.com", SECRET_PIN) is True
        proxy.set_fault("truncated", path_prefix="/api/customers", count=1)
        outcome, customer, retried = client.create_customer(user["id"], {"name": "Once"})
        assert (outcome, customer, retried) == ("exists", None, True)
        assert [c["name"] for c in client.list_customers(user["id"])] == ["Once"]


# --- writes and their quirks ---

def test_duplicate_email_quirk_means_exists(demo_backend, data_dir):
    shop = seed_shop(demo_backend.url, users=1, customers=0)
    with BackendClient(make_settings(data_dir, demo_backend.url)) as client:
        outcome, user, _ = client.create_user("owner0@example.com", SECRET_PIN)
        assert (outcome, user["id"]) == ("exists", shop["owner0@example.com"]["id"])
        outcome, user, _ = client.create_user("new@example.com", SECRET_PIN)
        assert outcome == "created" and client.get_user("new@example.com")["id"] == user["id"]
        assert client.signin("new@example.com", SECRET_PIN) is True
        assert client.signin("new@example.com", "000000") is False
        assert client.get_user("nobody+tag@example.com") is None
        with pytest.raises(BackendRejected) as caught:
            client.create_user("not-an-email", SECRET_PIN)
    assert caught.value.status == 422 and SECRET_PIN not in str(caught.value)


def test_duplicate_customer_means_exists(demo_backend, data_dir):
    shop = seed_shop(demo_backend.url, users=1, customers=1)
    owner = shop["owner0@example.com"]
    backed_up = {**next(iter(owner["customers"].values())), "user_id": "old-id", "id": "old"}
    with BackendClient(make_settings(data_dir, demo_backend.url)) as client:
        assert client.create_customer(owner["id"], backed_up) == ("exists", None, False)
        outcome, created, _ = client.create_customer(owner["id"], {**backed_up, "name": "Fresh"})
        listed = client.list_customers(owner["id"])
    assert outcome == "created" and created["orders"] == backed_up["orders"]
    assert sorted(c["name"] for c in listed) == ["Customer 0 of owner0", "Fresh"]


def test_wrong_token_is_rejected_without_showing_it(demo_backend, data_dir):
    token = "wrong-token-7c41d9e2"
    settings = make_settings(data_dir, demo_backend.url, backend_mode="snapshot", api_token=token)
    with BackendClient(settings) as client, pytest.raises(BackendError) as caught:
        client.read_snapshot()
    assert isinstance(caught.value, BackendRejected) and caught.value.status == 401
    assert token not in "".join(traceback.format_exception(caught.value))


# --- shapes the demo never sends: real canned answers ---

@pytest.mark.parametrize("answers, error_class, reason", [
    ({"/api/users": as_json({"users": []})}, BadAnswer, "expected a list, got dict"),
    ({"/api/users": as_json([{"id": "u1", "email": None}])}, BadAnswer, "item 0 has no text field 'email'"),
    ({"/api/users": as_json([{"id": "u1", "email": "a@b.c"}]), "/api/customers": as_json([{"id": "c1"}])},
     BadAnswer, "item 0 has no text field 'name'"),
    ({"/api/users": (500, "text/html", b"<html>oops</html>")}, BadAnswer, "unexpected status 500"),
    ({"/api/users": (200, "text/html", b"<html>hi</html>")}, BadAnswer, "answer is not JSON (text/html)"),
])
def test_wrong_shapes_are_bad_answers(canned, data_dir, answers, error_class, reason):
    server = canned(answers)
    with BackendClient(make_settings(data_dir, server.url)) as client, pytest.raises(error_class) as caught:
        client.read_snapshot()
    assert reason in str(caught.value)


def test_health_and_status_shapes_are_checked(canned, data_dir):
    server = canned({"/api/health": as_json({"ok": True}),
                     "/api/backup/status": as_json({"backup_triggers_count": "3", "recent_triggers": []})})
    with BackendClient(make_settings(data_dir, server.url)) as client:
        with pytest.raises(BadAnswer, match="status"):
            client.health()
        with pytest.raises(BadAnswer, match="backup_triggers_count"):
            client.backup_status()


def test_validation_errors_never_echo_the_pin(canned, data_dir):
    detail = [{"loc": ["body", "pin"], "msg": "String should have at most 6 characters", "input": SECRET_PIN}]
    server = canned({"/api/users": as_json({"detail": detail}, status=422)})
    with BackendClient(make_settings(data_dir, server.url)) as client, pytest.raises(BackendRejected) as caught:
        client.create_user("a@example.com", SECRET_PIN)
    assert "body.pin: String should have at most 6 characters" in str(caught.value)
    assert SECRET_PIN not in str(caught.value)


# --- the client's own clock and its one retry policy ---

@pytest.mark.parametrize("mode", ["silent", "trickle"])
def test_an_operation_ends_within_read_timeout_however_the_host_stalls(data_dir, mode):
    with RawServer(mode) as server, \
            BackendClient(make_settings(data_dir, server.url, read_timeout=1.5, retries=3)) as client:
        started = time.monotonic()
        with pytest.raises(BackendUnreachable, match=r"GET /api/health: timed out after 1\.5 s"):
            client.health()
        took = time.monotonic() - started
    # One READ_TIMEOUT, not one per try (three tries would be 4.5 s and more).
    assert 1.4 < took < 3.0, f"took {took:.2f} s"


def test_urllib3_retry_chatter_stays_out_of_the_logs(proxy, data_dir, caplog):
    proxy.set_fault("503", path_prefix="/api/users", count=2)
    with caplog.at_level("DEBUG"), BackendClient(make_settings(data_dir, proxy.url, retries=2)) as client:
        assert client.read_snapshot().counts()["users"] == 3
    assert not [r for r in caplog.records if r.name.startswith("urllib3") and r.levelno >= 30]
    assert "Retrying (Retry(" not in caplog.text


def test_an_answer_nested_too_deep_is_a_bad_answer(canned, data_dir):
    deep = b"[" * 5000 + b"]" * 5000
    server = canned({"/api/users": (200, "application/json", deep),
                     "/api/health": (200, "application/json", b'{"status": ' + deep + b"}")})
    with BackendClient(make_settings(data_dir, server.url)) as client:
        with pytest.raises(BadAnswer, match="GET /api/users: answer is nested too deeply to read"):
            client.read_snapshot()
        with pytest.raises(BadAnswer, match="nested too deeply"):
            client.health()


# --- redirects: followed only to the same scheme, host and port ---

@pytest.mark.parametrize("location, followed", [
    ("/api/users", "http://127.0.0.1:8000/api/users"),
    ("http://127.0.0.1:8000/api/customers?user_id=u1", "http://127.0.0.1:8000/api/customers?user_id=u1"),
    ("http://localhost:8000/api/users", None),
    ("http://127.0.0.1:8001/api/users", None),
    ("https://127.0.0.1:8000/api/users", None),
    ("//evil.example.com/api/users", None),
])
def test_a_redirect_is_taken_only_to_the_same_scheme_host_and_port(location, followed):
    assert same_origin_redirect("http://127.0.0.1:8000/api/users/", location) == followed


def test_https_never_redirects_to_plain_http_and_the_url_keeps_its_credentials():
    assert same_origin_redirect("https://shop.example.com/api/users/", "http://shop.example.com/api/users") is None
    assert same_origin_redirect("https://u:secret@shop.example.com/api/users/", "https://shop.example.com:443/api/users") \
        == "https://u:secret@shop.example.com/api/users"


def test_a_same_origin_307_is_followed_with_its_body(canned, data_dir):
    server = canned({"/api/users": (307, "application/json", b"", {"Location": "/api/users-here"}),
                     "/api/users-here": as_json({"id": "u1", "email": "a@example.com"}, status=201)})
    with BackendClient(make_settings(data_dir, server.url)) as client:
        outcome, user, _ = client.create_user("a@example.com", SECRET_PIN)
    assert outcome == "created" and user["id"] == "u1"
    assert server.hits == [("POST", "/api/users"), ("POST", "/api/users-here")]


def test_a_307_to_another_host_is_refused_and_the_other_host_hears_nothing(canned, data_dir):
    elsewhere = canned({"/api/users": as_json({"id": "u1", "email": "a@example.com"}, status=201)})
    other_host = elsewhere.url.replace("127.0.0.1", "localhost")
    server = canned({"/api/users": (307, "application/json", b"", {"Location": f"{other_host}/api/users"})})
    with BackendClient(make_settings(data_dir, server.url)) as client, pytest.raises(BadAnswer) as caught:
        client.create_user("a@example.com", SECRET_PIN)
    assert str(caught.value) == "POST /api/users: redirected (307) to another scheme, host or port; not followed"
    assert elsewhere.hits == []


def test_a_user_is_looked_up_by_the_stored_form_of_the_address(demo_backend, data_dir):
    with BackendClient(make_settings(data_dir, demo_backend.url)) as client:
        outcome, created, _ = client.create_user("Ama@Example.COM", "4821")
        assert outcome == "created" and created["email"] == "Ama@example.com"
        assert client.get_user("Ama@EXAMPLE.com")["id"] == created["id"]
        # The duplicate quirk's "exists" is confirmed through the same lookup.
        outcome, existing, _ = client.create_user("Ama@EXAMPLE.com", "4821")
        assert outcome == "exists" and existing["id"] == created["id"]


def test_a_status_read_that_fails_leaves_who_saved_last_unknown_and_the_read_whole(proxy, data_dir):
    proxy.set_fault("503", path_prefix="/api/backup/status", count=10)
    with BackendClient(make_settings(data_dir, proxy.url, retries=1)) as client:
        snapshot = client.read_snapshot()
    assert snapshot.counts()["users"] == 3 and "recent_trigger_users" not in snapshot.meta
