"""Helpers for tests of the long-running services: start the real commands, poll with deadlines, always stop them."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import requests

from helpers import PROJECT_DIR, command_env, run_command
from sleepguard.exceptions import BackupFileError
from sleepguard.processes import write_pid
from sleepguard.runner import read_state
from sleepguard.services import DEMO, SERVICES, log_path, pid_file_path, program_named
from sleepguard.state import as_json
from sleepguard.snapshot import parse_backup

STOP_DEADLINE = 10
POLL_SECONDS = 0.02
LOG_NAMES = {service.name: service.log_name for service in SERVICES}


class Services:
    """The service processes a test started; stop_all() ends each with SIGTERM, then kill."""

    def __init__(self):
        self.started = []

    def start(self, service, env):
        """Start DATA_DIR's copy of a service from its top-level command; returns the Popen."""
        process = subprocess.Popen([sys.executable, str(program_named(service).command)], cwd=PROJECT_DIR, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.started.append(process)
        return process

    def stop(self, process, signum=signal.SIGTERM):
        """Send signum, wait for the exit, kill if it does not come; returns the exit code."""
        if process.poll() is None:
            process.send_signal(signum)
            try:
                process.wait(STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_DEADLINE)
        process.communicate()
        return process.returncode

    def stop_all(self):
        for process in self.started:
            self.stop(process)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop_all()


def wait_until(condition, timeout, what):
    """Poll condition() until it returns something true, and return that; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(POLL_SECONDS)


def log_text(data_dir, service):
    """The service's log so far ('' before it exists)."""
    path = log_path(data_dir, program_named(service))
    return path.read_text() if path.exists() else ""


def figures(data_dir, service):
    """The figures of the service's last iteration ({} before the first)."""
    state = read_state(data_dir, service)
    return as_json(state)["last_figures"] if state else {}


def wait_for_figures(data_dir, service, done, timeout, what):
    """Poll the state file until done(figures) holds; return those figures."""
    def ready():
        found = figures(data_dir, service)
        return found if found and done(found) else None
    return wait_until(ready, timeout, what)


def wait_for_log(data_dir, service, text, timeout, count=1):
    """Poll the service's log until text appears count times; return the log."""
    def ready():
        log = log_text(data_dir, service)
        return log if log.count(text) >= count else None
    return wait_until(ready, timeout, f"{text!r} in the log of {service}")


def shop_by_owner(url):
    """{owner e-mail: sorted customer names} read through the public API: who owns what."""
    users = requests.get(f"{url}/api/users", timeout=10).json()
    return {user["email"]: sorted(c["name"] for c in requests.get(f"{url}/api/customers",
                                                                  params={"user_id": user["id"]}, timeout=10).json())
            for user in users}


def seeded_view(shop):
    """The same view of what seed_shop created."""
    return {email: sorted(owner["customers"]) for email, owner in shop.items()}


def backup_document(data_dir):
    """data_backup.json parsed, or None when there is none yet."""
    path = data_dir / "data_backup.json"
    return json.loads(path.read_bytes()) if path.exists() else None


class BackupWatcher:
    """Reads data_backup.json over and over in a thread, remembering the fewest customers it ever held."""

    def __init__(self, data_dir):
        self.path = data_dir / "data_backup.json"
        self.fewest_customers = None
        self.problems = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self._stop.wait(POLL_SECONDS / 2):
            try:
                customers = parse_backup(self.path.read_bytes()).counts()["customers"]
            except FileNotFoundError:
                continue
            except BackupFileError as exc:
                self.problems.append(str(exc))
                continue
            if self.fewest_customers is None or customers < self.fewest_customers:
                self.fewest_customers = customers

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(5)


def assert_one_line_error(result, command, *words):
    """A command failed with one line `<command>: error: ...` naming words, and no traceback."""
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{command}: error: "), lines[0]
    for word in words:
        assert word in lines[0]
    assert result.stdout == ""


FAST = {"BACKUP_INTERVAL": "0.5", "KEEP_ALIVE_INTERVAL": "0.3", "TRIGGER_POLL_INTERVAL": "0.2",
        "RESTORE_CHECK_INTERVAL": "0.3"}
OUR_PROGRAMS = tuple(program.marker for program in (*SERVICES, DEMO))


def processes_of(data_dir):
    """Every live service or demo back end whose DATA_DIR is this one (by command line and environment)."""
    found = []
    for process in psutil.process_iter(["cmdline", "environ"]):
        cmdline, environ = process.info["cmdline"] or [], process.info["environ"] or {}
        if not any(Path(arg).name in OUR_PROGRAMS for arg in cmdline):
            continue
        if environ.get("DATA_DIR") and Path(environ["DATA_DIR"]).resolve() == Path(data_dir).resolve():
            try:
                if process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
            except psutil.NoSuchProcess:
                pass
    return found


def wait_for(condition, seconds=15):
    """Poll condition() until it is true; fail the test when the deadline passes."""
    return wait_until(condition, seconds, condition.__name__)


def write_pid_file(data_dir, service, process):
    """A PID file naming process with its true start time, as a service would write it (but held by nobody)."""
    fd = os.open(pid_file_path(data_dir, service), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        write_pid(fd, process.pid, psutil.Process(process.pid).create_time())
    finally:
        os.close(fd)


class ServiceCommandChecks:
    """What every service command must do as its user runs it; a test class per command sets the names."""

    COMMAND = SERVICE = BAD_SETTING = None

    def test_help_gives_the_usage_and_starts_nothing(self, data_dir):
        result = run_command(self.COMMAND, "--help", env=command_env(data_dir))
        assert result.returncode == 0 and f"usage: {self.COMMAND}" in result.stdout
        assert list(data_dir.iterdir()) == []

    def test_a_bad_setting_is_one_line_and_a_non_zero_exit(self, demo_backend, data_dir):
        result = run_command(self.COMMAND, env=command_env(data_dir, demo_backend.url, **{self.BAD_SETTING: "often"}))
        assert_one_line_error(result, self.COMMAND, self.BAD_SETTING, "'often'")

    def test_without_a_back_end_it_says_what_to_set(self, data_dir):
        assert_one_line_error(run_command(self.COMMAND, env=command_env(data_dir)), self.COMMAND,
                              "BACKEND_URL is not set")

    def test_a_second_copy_refuses_and_the_first_keeps_running(self, demo_backend, data_dir):
        env = command_env(data_dir, demo_backend.url)
        with Services() as services:
            first = services.start(self.SERVICE, env)
            wait_until(lambda: read_state(data_dir, self.SERVICE), 10, "the first copy's first iteration")
            second = run_command(self.COMMAND, env=env, timeout=20)
            assert_one_line_error(second, self.COMMAND, f"{self.SERVICE} is already running (PID {first.pid})")
            assert first.poll() is None and read_state(data_dir, self.SERVICE).pid == first.pid
