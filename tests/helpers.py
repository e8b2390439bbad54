"""Plain helpers the tests share: settings for a test, seeding a shop, running a command."""

import json
import os
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from sleepguard.backup import take_backup
from sleepguard.client import BackendClient
from sleepguard.settings import SETTINGS, load_settings
from sleepguard.snapshot import Snapshot, parse_backup

PROJECT_DIR = Path(__file__).resolve().parent.parent
# An existing, empty settings file: a named ENV_FILE must exist, and none of the developer's .env leaks in.
NO_SETTINGS_FILE = os.devnull
COMMANDS = ["start_all_super_services.py", "keep_alive_super_aggressive.py", "auto_backup_super_aggressive.py",
            "auto_restore_service.py", "backup_status.py", "manual_backup.py", "restore_simple.py"]


def make_settings(data_dir, backend_url="", **overrides):
    """Settings for a test: fast loops, short timeouts, everything else default."""
    environ = {"DATA_DIR": str(data_dir), "BACKEND_URL": backend_url, "READ_TIMEOUT": "5",
               "CONNECT_TIMEOUT": "2", "RETRY_BACKOFF": "0.05", "RETRIES": "2",
               **{k.upper(): str(v) for k, v in overrides.items()}}
    return load_settings(environ=environ, env_file=NO_SETTINGS_FILE)


def backup_now(settings, accept_shrink=False):
    """One backup over a client of its own, as manual_backup.py takes it."""
    with BackendClient(settings) as client:
        return take_backup(settings, client, accept_shrink=accept_shrink)


def seed_shop(url, users=3, customers=4, prefix="owner", pin_of=lambda i: f"{4000 + i}", workers=16):
    """Create users (each with its own PIN) and their customers with orders through the public API.

    Returns {email: {"pin": pin, "id": user_id, "customers": {name: customer}}}.
    """
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=workers)
    session.mount("http://", adapter)
    shop = {}

    def add_user(i):
        email = f"{prefix}{i}@example.com"
        answer = session.post(f"{url}/api/users", json={"email": email, "pin": pin_of(i)}, timeout=10)
        answer.raise_for_status()
        return email, {"pin": pin_of(i), "id": answer.json()["id"], "customers": {}}

    with ThreadPoolExecutor(workers) as pool:
        shop.update(pool.map(add_user, range(users)))

        def add_customer(job):
            email, j = job
            body = {"name": f"Customer {j} of {email.split('@')[0]}", "money_given": 10.5 * j, "total_spent": 3.25 * j,
                    "orders": [{"id": f"order-{j}", "orderRef": "", "orderDate": "2025-08-21",
                                "items": [{"desc": f"Item {j}", "qty": "1", "color": "", "size": "", "price": "60.94"}],
                                "comments": "", "savedAt": "8/21/2025, 2:23:11 AM"}]}
            answer = session.post(f"{url}/api/customers", params={"user_id": shop[email]["id"]}, json=body, timeout=10)
            answer.raise_for_status()
            return email, answer.json()

        jobs = [(email, j) for email in shop for j in range(customers)]
        for email, customer in pool.map(add_customer, jobs):
            shop[email]["customers"][customer["name"]] = customer
    session.close()
    return shop


def run_command(script, *args, env=None, timeout=60, input=None):
    """Run one of the top-level commands in a subprocess; returns CompletedProcess with text output."""
    return subprocess.run([sys.executable, str(PROJECT_DIR / script), *args], cwd=PROJECT_DIR, env=env,
                          capture_output=True, text=True, timeout=timeout, input=input)


def command_env(data_dir, backend_url="", **overrides):
    """Environment for a command subprocess: our settings only, fast and private."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env.update({"DATA_DIR": str(data_dir), "BACKEND_URL": backend_url, "READ_TIMEOUT": "5", "CONNECT_TIMEOUT": "2",
                "RETRY_BACKOFF": "0.05", "RETRIES": "2", "ENV_FILE": NO_SETTINGS_FILE,
                # Tests watch per-round counters in the state files: write them every round.
                "STATE_WRITE_INTERVAL": "0.001"})
    env.update({k.upper(): str(v) for k, v in overrides.items()})
    return env


GUESSES = ("0000", "1234", "000000", "123456")


def shop_view(state):
    """{owner e-mail: {customer name: (money given, total spent, orders)}} from the admin state: who owns what."""
    email_of = {user["id"]: user["email"] for user in state["users"]}
    view = {email: {} for email in email_of.values()}
    for customer in state["customers"]:
        view[email_of[customer["user_id"]]][customer["name"]] = (
            customer["money_given"], customer["total_spent"], customer["orders"])
    return view


def sorted_state(state):
    """The admin state with its lists in one order, so equal content compares equal."""
    return {key: sorted(value, key=lambda record: record["id"]) for key, value in state.items()}


def customer_count(state):
    return len(state["customers"])


def signs_in(url, email, pin):
    answer = requests.post(f"{url}/api/users/signin", json={"email": email, "pin": pin}, timeout=10)
    assert answer.status_code in (200, 401), answer.text
    return answer.status_code == 200


def files_under(folder):
    """Every file and folder below folder: relative name → (bytes, mtime_ns); folders map to None."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


DEMO_STARTUP_DEADLINE = 15
TEST_PIN_HASH_ROUNDS = 4  # bcrypt's lowest cost: about 1 ms a hash


def start_demo_process(*args, env=None, stderr=subprocess.PIPE, pin_hash_rounds=TEST_PIN_HASH_ROUNDS):
    """Start `python3 -m sleepguard.demo_backend --port 0 ARGS`; return (process, base URL or None if it never said).

    PINs are hashed at bcrypt cost pin_hash_rounds, 4 by default so that tests seeding hundreds of users stay fast
    (the real server's 12 costs about 0.25 s a hash); None leaves the demo's own default, the real cost.
    The demo's first stdout line is its URL; reading it on a thread keeps a demo that hangs from hanging the caller.
    """
    rounds = [] if pin_hash_rounds is None else ["--pin-hash-rounds", str(pin_hash_rounds)]
    process = subprocess.Popen([sys.executable, "-m", "sleepguard.demo_backend", "--port", "0", *rounds, *args],
                               cwd=PROJECT_DIR, env={**(env or os.environ), "PYTHONUNBUFFERED": "1"},
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True)
    first_line = []
    reader = threading.Thread(target=lambda: first_line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(DEMO_STARTUP_DEADLINE)
    url = first_line[0].strip() if first_line and first_line[0].startswith("http") else None
    return process, url


def legacy_snapshot(users, customers, pins=None):
    """A legacy backup as the earlier scripts wrote it: these users (PINs on them if given), ownerless customers."""
    doc = {"backup_created": "2025-08-21T02:23:11", "backup_type": "auto",
           "users": [{"id": f"id-{i}", "email": email, **({"pin": pins[email]} if pins else {})}
                     for i, email in enumerate(users)],
           "customers": [{"id": f"c-{i}", "name": name, "money_given": 1.0, "total_spent": 2.0, "orders": []}
                         for i, name in enumerate(customers)]}
    return parse_backup(json.dumps(doc).encode())


def api_snapshot(owners):
    """A Snapshot as an API read gives it, from {email: [customer names]}."""
    users = [{"id": f"id-{email}", "email": email} for email in owners]
    customers = {f"id-{email}": [{"id": f"c-{email}-{name}", "name": name, "money_given": 0.0, "total_spent": 0.0,
                                  "orders": [{"id": "o1"}]} for name in names] for email, names in owners.items()}
    return Snapshot.from_api(users, customers, {"mode": "babs10"})


class RawServer:
    """A loopback TCP server that accepts and then never answers ("silent") or sends a byte a second ("trickle")."""

    def __init__(self, mode):
        self.mode = mode
        self.stopping = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn):
        # A status line that never ends: every byte restarts a per-read timeout, so only a clock can stop it.
        trickle = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000
        with conn:
            for byte in trickle:
                if self.stopping.wait(1.0):
                    return
                if self.mode == "trickle":
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        return

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stopping.set()
        self.thread.join()
        self.listener.close()
