"""Shared fixtures: a running demo back end, a private DATA_DIR, and a clean settings environment."""

import json
import subprocess
import sys
import threading

import pytest
import requests

from helpers import DEMO_STARTUP_DEADLINE, NO_SETTINGS_FILE, PROJECT_DIR, TEST_PIN_HASH_ROUNDS, free_port, make_settings, \
    start_demo_process
from fault_proxy import FaultProxy
from service_helpers import Services, processes_of
from sleepguard.launcher import stop_services
from sleepguard.services import demo_folder_path
from sleepguard.settings import SETTINGS

DEMO_TOKEN = "demo-test-token-5e1f"


class DemoBackend:
    """A demo back end running as a real subprocess; `url` is its base URL. PINs are hashed at bcrypt cost
    pin_hash_rounds (the tests' low default; None: the demo's default, the real server's 12)."""

    def __init__(self, *args, token=DEMO_TOKEN, pin_hash_rounds=TEST_PIN_HASH_ROUNDS):
        self.token = token
        self.process, url = start_demo_process(*args, *(["--token", token] if token else []),
                                               pin_hash_rounds=pin_hash_rounds)
        if url is None:
            self.stop()
            raise RuntimeError(f"demo back end did not start: {self.process.stderr.read()[-2000:]}")
        self.url = url

    def admin(self, method, path, **kwargs):
        """Call an admin endpoint with the bearer token."""
        return requests.request(method, self.url + path, headers={"Authorization": f"Bearer {self.token}"},
                                timeout=10, **kwargs)

    def sleep_now(self):
        """Simulate the host stopping: every record is gone."""
        self.admin("POST", "/api/admin/sleep").raise_for_status()

    def state(self):
        return self.admin("GET", "/api/admin/snapshot").json()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for stream in (self.process.stdout, self.process.stderr):
            stream.close()


@pytest.fixture
def start_demo():
    """Factory: start_demo('--idle-sleep', '0.5') starts a demo back end; all are stopped afterwards."""
    started = []

    def start(*args, token=DEMO_TOKEN, pin_hash_rounds=TEST_PIN_HASH_ROUNDS):
        backend = DemoBackend(*args, token=token, pin_hash_rounds=pin_hash_rounds)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.stop()


@pytest.fixture
def services():
    """The service processes a test starts (service_helpers.Services), each stopped afterwards."""
    with Services() as started:
        yield started


@pytest.fixture
def proxy(demo_backend):
    """A fault proxy in front of the demo back end (a test file may give its own)."""
    with FaultProxy(demo_backend.url) as running:
        yield running


@pytest.fixture
def demo_backend(start_demo):
    """One running demo back end with admin endpoints enabled."""
    return start_demo()


@pytest.fixture
def data_dir(tmp_path):
    """A fresh DATA_DIR for one test."""
    path = tmp_path / "data"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture(autouse=True)
def clean_settings_env(monkeypatch):
    """No setting of the developer's shell or .env leaks into a test."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ENV_FILE", NO_SETTINGS_FILE)


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", default=False,
                     help="also run the long variants (60 s cold start, a longer soak)")


def pytest_configure(config):
    config.addinivalue_line("markers", "long: a long variant, run only with --long")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--long"):
        return
    skip_long = pytest.mark.skip(reason="long variant: run with --long")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip_long)


@pytest.fixture
def long_run(request):
    """True when pytest was given --long: tests scale their cycles up."""
    return request.config.getoption("--long")


@pytest.fixture
def stopped_afterwards(data_dir):
    """Stop every service and demo of data_dir after the test, and fail if any process of ours is left."""
    yield
    stop_services(make_settings(data_dir))
    leftovers = processes_of(data_dir) + processes_of(demo_folder_path(data_dir))
    for process in leftovers:
        process.kill()
    assert not leftovers, f"processes left running: {leftovers}"


@pytest.fixture
def sleeper():
    """A live process that is not ours: `sleep 60`."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


# --- off-site copies: moto's S3 server as its own process on loopback ---

from offsite_helpers import MOTO_KEY_ID, MOTO_SECRET, MotoBucket, MotoServer  # noqa: E402


@pytest.fixture
def start_moto():
    """Factory: start_moto() starts a moto S3 server (env= for its settings); all are stopped afterwards."""
    started = []

    def start(env=None):
        server = MotoServer(env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def moto_server():
    """One moto S3 server per test worker (it takes over a second to start); each test gets its own bucket."""
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def moto_s3(moto_server, monkeypatch):
    """A new empty bucket on the moto server, and our test credentials in the environment."""
    import uuid
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", MOTO_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", MOTO_SECRET)
    bucket = f"shop-copies-{uuid.uuid4().hex[:12]}"
    moto_server.client().make_bucket(bucket)
    return MotoBucket(moto_server, bucket)


class HttpReceiver:
    """tests/http_receiver.py as a real process on a loopback port that stays the same across stop/start."""

    def __init__(self, record_file, port):
        self.record_file, self.port, self.process = record_file, port, None
        self.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def apprise_url(self):
        """The receiver as apprise's json:// target."""
        return f"json://127.0.0.1:{self.port}/"

    def start(self):
        self.process = subprocess.Popen([sys.executable, str(PROJECT_DIR / "tests" / "http_receiver.py"),
                                         "--port", str(self.port), "--record", str(self.record_file)],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        ready = []
        reader = threading.Thread(target=lambda: ready.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(DEMO_STARTUP_DEADLINE)
        if not ready or ready[0].strip() != "ready":
            self.stop()
            raise RuntimeError(f"receiver did not start on port {self.port}")

    def stop(self):
        """Down: nothing listens on the port until start()."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        if self.process is not None:
            self.process.stdout.close()
            self.process.stderr.close()

    def answer(self, status=200, delay=0.0):
        """From now on answer with this status after delay seconds."""
        requests.post(self.url + "/_control", json={"status": status, "delay": delay}, timeout=5).raise_for_status()

    def received(self):
        """Every request so far, in order: dicts with method, path and body."""
        try:
            lines = self.record_file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def notifications(self, answered_only=True):
        """The bodies apprise's json:// posted, parsed: dicts with title, message, type.

        By default only those the sender heard answered; answered_only=False adds those it hung up on.
        """
        return [json.loads(request["body"]) for request in self.received()
                if request["method"] == "POST" and (request["answered"] or not answered_only)]


@pytest.fixture
def start_receiver(tmp_path):
    """Factory: start_receiver() starts an HttpReceiver on a free port; all are stopped afterwards."""
    started = []

    def start():
        receiver = HttpReceiver(tmp_path / f"received-{len(started)}.jsonl", free_port())
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def receiver(start_receiver):
    """One running HTTP receiver."""
    return start_receiver()


# A restore of DATA_DIR running in another process: it holds the lock until its stdin closes.
RESTORE_HOLDER = """
import sys
from sleepguard.restore_lock import RestoreLock
with RestoreLock(sys.argv[1], 200) as progress:
    progress.advance(37)
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def restore_held_elsewhere(data_dir):
    """Another process restoring data_dir, 37 of 200 users done (a real process holding the real lock)."""
    process = subprocess.Popen([sys.executable, "-c", RESTORE_HOLDER, str(data_dir)], cwd=PROJECT_DIR, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdout.readline() == "held\n"
    yield process
    process.stdin.close()
    process.wait(10)
    process.stdout.close()
