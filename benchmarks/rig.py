"""The benchmark's test bench: the demo back end, a network-like latency proxy, the services as processes, polls."""

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import requests

from fault_proxy import FaultProxy
from helpers import seed_shop, shop_view, start_demo_process
from sleepguard.atomicfile import ensure_private_dir, write_json_atomic
from sleepguard.runner import read_state
from sleepguard import services as registry
from sleepguard.state import as_json
from sleepguard.settings import SETTINGS, load_settings
from sleepguard.snapshot import utc_now_iso

PROJECT_DIR = Path(__file__).resolve().parent.parent
STOP_DEADLINE = 10.0
POLL_SECONDS = 0.05
SEED_TRIGGERS = 10
KEEP_ALIVE = registry.KEEP_ALIVE.name
AUTO_BACKUP = registry.AUTO_BACKUP.name
AUTO_RESTORE = registry.AUTO_RESTORE.name
SERVICE_NAMES = tuple(service.name for service in registry.SERVICES)


class BenchError(Exception):
    """A step of the benchmark could not be carried out (a deadline passed, a process died)."""


def wait_for(condition, timeout, what, poll=POLL_SECONDS):
    """Poll condition() until it returns something true and return it; BenchError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


def stop_process(process, deadline=STOP_DEADLINE):
    """SIGTERM one process we started, then SIGKILL if it does not leave in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(deadline)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(deadline)


def pss(pid):
    """The process's PSS in bytes from /proc/PID/smaps_rollup (shared pages counted by share); None where unknown."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def memory(pid):
    """{"peak_rss", "rss", "pss", "uss"} in bytes. The peak is VmHWM where Linux offers it, else the current RSS;
    USS is the memory only this process holds, PSS adds its share of shared pages; None where unknown."""
    process = psutil.Process(pid)
    figures = {"rss": process.memory_info().rss, "pss": None, "uss": None}
    figures["peak_rss"] = figures["rss"]
    try:
        full = process.memory_full_info()
        figures["pss"], figures["uss"] = full.pss, full.uss
    except (AttributeError, psutil.Error):
        pass
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                figures["peak_rss"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return figures


# A process that loads what a service loads, says so, and holds nothing until its stdin closes.
IDLE_SERVICE = "import importlib, sys; importlib.import_module(sys.argv[1]); print('ready', flush=True); sys.stdin.read()"
SERVICE_MODULES = ("sleepguard.keep_alive", "sleepguard.auto_backup", "sleepguard.auto_restore")


def idle_floor():
    """The sum of PSS of three processes that import what the three services import and hold no data: their floor."""
    processes = [subprocess.Popen([sys.executable, "-c", IDLE_SERVICE, module], cwd=PROJECT_DIR, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE) for module in SERVICE_MODULES]
    try:
        for process in processes:
            if process.stdout.readline().strip() != "ready":
                raise BenchError("a process importing a service module did not start")
        return sum(pss(process.pid) or 0 for process in processes)
    finally:
        for process in processes:
            process.stdin.close()
            process.wait(10)
            process.stdout.close()


def renice(pid, value=19):
    """Lower a background process's priority so it steals no CPU from a measurement."""
    try:
        psutil.Process(pid).nice(value)
    except (psutil.Error, OSError):
        pass


class Demo:
    """The demo back end as a real subprocess, admin endpoints on behind a random token; PINs hashed at bcrypt cost
    pin_hash_rounds (4 keeps seeding fast; 12 is the real server's cost)."""

    def __init__(self, workdir, name="demo", pin_hash_rounds=4):
        self.token = secrets.token_urlsafe(24)
        self.name = name
        env = {**os.environ, "DEMO_API_TOKEN": self.token}
        # The token travels in the environment, never in argv where ps would show it.
        with open(Path(workdir) / f"{name}.log", "ab") as log_file:
            self.process, self.url = start_demo_process(env=env, stderr=log_file, pin_hash_rounds=pin_hash_rounds)
        if self.url is None:
            self.stop()
            raise BenchError(f"the demo back end did not start (see {workdir}/{name}.log)")
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {self.token}"

    def admin(self, method, path, **kwargs):
        answer = self._session.request(method, self.url + path, timeout=30, **kwargs)
        answer.raise_for_status()
        return answer.json()

    def sleep_now(self):
        """The host stops: every record is gone."""
        self.admin("POST", "/api/admin/sleep")

    def state(self):
        return self.admin("GET", "/api/admin/snapshot")

    def put_state(self, state):
        self.admin("PUT", "/api/admin/snapshot", json=state)

    def view(self):
        """{owner e-mail: {customer name: (money given, total spent, orders)}}: the data, ids aside."""
        return shop_view(self.state())

    def stop(self):
        session = getattr(self, "_session", None)
        if session is not None:
            session.close()
        stop_process(self.process)
        self.process.stdout.close()


class LatencyProxy(FaultProxy):
    """The fault proxy with a network's round trip: each request waits one RTT, each new connection one more.

    The extra RTT per new connection is the TCP handshake a real network charges (TLS would add
    one or two more); without it a fresh connection per request would cost nothing on loopback.
    It also notes when each /api/health request passed, to time recovery from the keep-alive's
    first good answer.
    """

    def __init__(self, upstream_url, rtt, handshake=True):
        super().__init__(upstream_url)
        self.rtt = rtt
        self.handshake_seconds = rtt if handshake else 0.0
        self.health_passed = []  # monotonic times a /api/health answer left the proxy
        self.connections_opened = 0
        self._count_lock = threading.Lock()

    def start(self):
        super().start()
        self.normal()
        return self

    def normal(self):
        """Every request passes, one round trip late."""
        self.set_fault("latency", latency=self.rtt)

    def host_down(self):
        """The host front end answers 502 to everything, as while the app is stopped."""
        self.set_fault("502", latency=self.rtt)

    def _track(self, connection):
        super()._track(connection)
        with self._count_lock:
            self.connections_opened += 1
        if self.handshake_seconds:
            time.sleep(self.handshake_seconds)

    def _take_fault(self, path, method):
        fault = super()._take_fault(path, method)
        if path == "/api/health" and (fault is None or fault.kind in (None, "latency")):
            self.health_passed.append(time.monotonic() + (fault.latency if fault else 0.0))
        return fault


def seed(url, users, customers):
    """Fill the back end with users x customers (one order each) and a few saves; return {email: PIN}."""
    shop = seed_shop(url, users, customers, prefix="owner")
    for number in range(SEED_TRIGGERS):
        post_trigger(url, f"seed {number}")
    return {email: owner["pin"] for email, owner in shop.items()}


def post_trigger(url, action, user="owner0@example.com"):
    """What the front end calls after each save: the signed-in user's e-mail and what they did."""
    answer = requests.post(f"{url}/api/backup/trigger", timeout=10,
                           json={"user": user, "action": action, "timestamp": utc_now_iso()})
    answer.raise_for_status()


def clean_environ():
    """This process's environment without any sleepguard setting, so nothing leaks in from the shell."""
    return {key: value for key, value in os.environ.items() if key not in SETTINGS and key != "DEMO_API_TOKEN"}


class Bench:
    """The temp folder everything lives in; settings and environments that never reach the repo's DATA_DIR."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.env_file = Path(os.devnull)
        self.pins_file = self.workdir / "pins.json"

    def write_pins(self, pins):
        write_json_atomic(self.pins_file, pins)

    def data_dir(self, name):
        return ensure_private_dir(self.workdir / name)

    def variables(self, data_dir, backend_url, **overrides):
        return {"DATA_DIR": str(data_dir), "BACKEND_URL": backend_url, "PINS_FILE": str(self.pins_file),
                "ENV_FILE": str(self.env_file), **{key.upper(): str(value) for key, value in overrides.items()}}

    def settings(self, data_dir, backend_url, **overrides):
        """Default settings but for where the data lives and which back end, and any overrides."""
        return load_settings(environ=self.variables(data_dir, backend_url, **overrides), env_file=self.env_file)

    def service_env(self, data_dir, backend_url, **overrides):
        return {**clean_environ(), **self.variables(data_dir, backend_url, **overrides)}


class Services:
    """The three services of one DATA_DIR as real processes started from their commands."""

    def __init__(self, bench, data_dir, backend_url, nice=False, **overrides):
        self.bench = bench
        self.data_dir = Path(data_dir)
        self.backend_url = backend_url
        self.nice = nice
        self.overrides = overrides
        self.processes = {}

    def start(self, name, **overrides):
        env = self.bench.service_env(self.data_dir, self.backend_url, **{**self.overrides, **overrides})
        with open(self.data_dir / f"{name}.output", "ab") as output:
            command = registry.program_named(name).command
            process = subprocess.Popen([sys.executable, str(command)], cwd=PROJECT_DIR, env=env,
                                       stdin=subprocess.DEVNULL, stdout=output, stderr=output)
        if self.nice:
            renice(process.pid)
        self.processes[name] = process
        return process

    def stop(self, name):
        process = self.processes.pop(name, None)
        if process is not None:
            stop_process(process)

    def stop_all(self):
        for name in list(self.processes):
            self.stop(name)

    def state(self, name):
        """The service's state file, {} before its first iteration; BenchError once it has died."""
        process = self.processes.get(name)
        if process is not None and process.poll() is not None:
            raise BenchError(f"{name} exited with code {process.returncode} "
                             f"(see {self.data_dir / (name + '.output')} and its log)")
        state = read_state(self.data_dir, name)
        return as_json(state) if state else {}

    def figures(self, name):
        return self.state(name).get("last_figures", {})

    def wait_state(self, name, done, timeout, what):
        """Poll the service's state file until done(state) holds; return that state."""
        def ready():
            state = self.state(name)
            return state if state and done(state) else None
        return wait_for(ready, timeout, f"{name}: {what}")

    def memory(self):
        """{service: memory figures} of the running services."""
        return {name: memory(process.pid) for name, process in self.processes.items() if process.poll() is None}

    def iterations(self, name):
        return self.state(name).get("iterations", 0)


def read_json(path):
    try:
        return json.loads(Path(path).read_bytes())
    except (OSError, ValueError):
        return None
