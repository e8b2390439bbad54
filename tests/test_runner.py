"""The service loop as a real process: PID file, refusal of a second copy, signals, failures, bounded logs."""

import json
import logging
import os
import re
import signal
import stat
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil
import pytest

from sleepguard.logsetup import setup_command_logging, setup_service_logging
from sleepguard.processes import check_service, signal_service
from sleepguard.runner import read_state, state_file_path
from sleepguard.services import pid_file_path
from sleepguard.snapshot import parse_utc_time
from sleepguard.state import as_json

REPO_DIR = Path(__file__).resolve().parent.parent
SERVICE = "demo_tick_service"
LOG_NAME = "demo_tick.log"
# A test-only service: counts ticks, fails every DEMO_FAIL_EVERY-th one, pads its summary.
SERVICE_SCRIPT = """
import os
import sys
from pathlib import Path
from sleepguard.exceptions import ServiceAlreadyRunning
from sleepguard.runner import run_service
from sleepguard.settings import load_settings
from sleepguard.state import Iteration

FAIL_EVERY = int(os.environ.get("DEMO_FAIL_EVERY", "0"))
CHANGE_EVERY = int(os.environ.get("DEMO_CHANGE_EVERY", "0"))
PADDING = "x" * int(os.environ.get("DEMO_PADDING", "0"))
wakes = []


def tick(context):
    if FAIL_EVERY and context.iteration % FAIL_EVERY == 0:
        raise ValueError(f"tick {context.iteration} failed on purpose")
    if CHANGE_EVERY:
        # Only the summary moves each round (it ticks); the figures change every CHANGE_EVERY-th round, three times.
        return Iteration("good", f"tick {context.iteration}", {"phase": min(context.iteration // CHANGE_EVERY, 3)})
    return Iteration("good", f"tick {context.iteration} {PADDING}",
                     {"tick": context.iteration, "woken": context.woken, "wakes": len(wakes), "path": Path("/x")})


if os.environ.get("DEMO_WAKE_AT_PID_FILE"):
    # A sibling's wake-up the instant the PID file names this service, before its loop has begun.
    import signal
    import sleepguard.runner
    acquire = sleepguard.runner.acquire_pid_file

    def acquire_then_woken(*args):
        lock = acquire(*args)
        os.kill(os.getpid(), signal.SIGUSR1)
        return lock
    sleepguard.runner.acquire_pid_file = acquire_then_woken

settings = load_settings(env_file=os.devnull)
try:
    sys.exit(run_service("demo_tick_service", "demo_tick.log", settings,
                         float(os.environ["DEMO_INTERVAL"]), tick,
                         on_wake=lambda: wakes.append(1)))
except ServiceAlreadyRunning as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
"""


@pytest.fixture
def data_dir(tmp_path):
    """A data folder that does not exist yet: the service must create it."""
    return tmp_path / "data"


@pytest.fixture
def start_service(tmp_path, data_dir):
    """Start the demo service under umask 000; every copy is ended after the test."""
    script = tmp_path / f"{SERVICE}.py"
    script.write_text(SERVICE_SCRIPT)
    started = []

    def start(interval=30, **extra_env):
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO_DIR), "DATA_DIR": str(data_dir),
               "DEMO_INTERVAL": str(interval), **{k: str(v) for k, v in extra_env.items()}}
        process = subprocess.Popen([sys.executable, str(script)], env=env, umask=0,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def wait_for_state(data_dir, done, timeout=10.0):
    """Poll the state file until done(state) holds; return that state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(data_dir, SERVICE)
        if state is not None and done(as_json(state)):
            return as_json(state)
        time.sleep(0.01)
    raise AssertionError(f"state never got there; last: {read_state(data_dir, SERVICE)}")


def wait_for_exit(process, timeout=5.0):
    """Return the seconds until process exits, failing after timeout."""
    started = time.monotonic()
    process.wait(timeout=timeout)
    return time.monotonic() - started


def log_text(data_dir):
    return (data_dir / LOG_NAME).read_text()


def test_pid_file_names_the_service_and_a_second_copy_refuses(start_service, data_dir):
    service = start_service()
    wait_for_state(data_dir, lambda s: s["iterations"] == 1)
    pid_line, time_line = pid_file_path(data_dir, SERVICE).read_text().splitlines()
    assert int(pid_line) == service.pid
    assert abs(float(time_line) - psutil.Process(service.pid).create_time()) < 0.01
    assert check_service(data_dir, SERVICE).state == "running"

    second = start_service()
    _, stderr = second.communicate(timeout=10)
    assert second.returncode != 0
    assert stderr.strip() == f"{SERVICE} is already running (PID {service.pid})"
    assert check_service(data_dir, SERVICE).pid == service.pid
    assert service.poll() is None

    service.send_signal(signal.SIGTERM)
    assert wait_for_exit(service) < 1.5
    assert service.returncode == 0
    assert not pid_file_path(data_dir, SERVICE).exists()
    assert check_service(data_dir, SERVICE).state == "stopped"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_ends_a_long_wait_within_a_second(start_service, data_dir, signum):
    service = start_service(interval=30)
    wait_for_state(data_dir, lambda s: s["iterations"] == 1)
    time.sleep(0.2)  # be well inside the 30 s wait
    service.send_signal(signum)
    assert wait_for_exit(service) < 1.5
    assert service.returncode == 0
    log = log_text(data_dir)
    assert f"INFO received {signal.Signals(signum).name}, stopping" in log
    assert "INFO stopped after 1 iterations" in log
    assert not pid_file_path(data_dir, SERVICE).exists()


def test_sigusr1_wakes_the_service_at_once(start_service, data_dir):
    service = start_service(interval=30)
    wait_for_state(data_dir, lambda s: s["iterations"] == 1)
    assert signal_service(data_dir, SERVICE, signal.SIGUSR1) is True
    sent = time.monotonic()
    state = wait_for_state(data_dir, lambda s: s["iterations"] == 2, timeout=5)
    assert time.monotonic() - sent < 10  # at once, not after the 30 s interval
    assert state["last_figures"] == {"tick": 2, "woken": True, "wakes": 1, "path": "/x"}
    assert "INFO woken by SIGUSR1" in log_text(data_dir)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO ", log_text(data_dir))
    assert service.poll() is None


def test_a_wake_as_soon_as_the_pid_file_is_written_is_kept_and_never_kills(start_service, data_dir):
    service = start_service(interval=30, DEMO_WAKE_AT_PID_FILE=1)
    # SIGUSR1's default action ends a process: a handler not yet installed would mean exit code -10 here.
    state = wait_for_state(data_dir, lambda s: s["iterations"] == 2, timeout=5)
    assert state["last_figures"]["woken"] is True and service.poll() is None
    assert "INFO woken by SIGUSR1" in log_text(data_dir)


def test_failing_iteration_is_logged_and_the_loop_goes_on(start_service, data_dir):
    start_service(interval=0.01, DEMO_FAIL_EVERY=3)
    state = wait_for_state(data_dir, lambda s: s["iterations"] >= 7)
    assert state["failures"] >= 2
    log = log_text(data_dir)
    assert "ERROR iteration failed: ValueError: tick 3 failed on purpose" in log
    assert "INFO tick 4" in log and "INFO tick 7" in log
    assert "Traceback" not in log
    failed = wait_for_state(data_dir, lambda s: s["iterations"] % 3 == 0)
    assert failed["last_outcome"] == "failed"
    assert failed["last_summary"] == f"iteration failed: ValueError: tick {failed['iterations']} failed on purpose"
    assert failed["consecutive_failures"] == 1


def test_thousands_of_iterations_keep_logs_bounded_and_files_private(start_service, data_dir):
    max_bytes, backup_count = 20000, 2
    service = start_service(interval=0.001, LOG_MAX_BYTES=max_bytes, LOG_BACKUP_COUNT=backup_count,
                            DEMO_PADDING=300, DEMO_FAIL_EVERY=50)
    state = wait_for_state(data_dir, lambda s: s["iterations"] >= 1000, timeout=15)
    service.send_signal(signal.SIGTERM)
    assert wait_for_exit(service) < 1.5

    logs = sorted(p.name for p in data_dir.iterdir() if p.name.startswith(LOG_NAME))
    assert logs == [LOG_NAME, f"{LOG_NAME}.1", f"{LOG_NAME}.2"]
    assert sum((data_dir / name).stat().st_size for name in logs) <= (backup_count + 1) * max_bytes
    assert state["failures"] == state["iterations"] // 50
    assert "ERROR iteration failed" in log_text(data_dir)

    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for path in data_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert state_file_path(data_dir, SERVICE).exists()


def test_state_file_holds_the_last_run_in_small_json(start_service, data_dir):
    service = start_service(interval=30)
    state = wait_for_state(data_dir, lambda s: s["iterations"] == 1)
    assert set(state) == {"service", "pid", "started_at", "last_run_at", "last_duration", "last_outcome",
                          "last_summary", "last_figures", "iterations", "failures", "consecutive_failures"}
    assert (state["service"], state["pid"], state["last_outcome"]) == (SERVICE, service.pid, "good")
    assert state["started_at"].endswith("Z") and state["last_run_at"].endswith("Z")
    assert state["last_summary"] == "tick 1 "
    assert state_file_path(data_dir, SERVICE).stat().st_size < 2000


@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_read_state_of_garbage_is_none(tmp_path, content):
    state_file_path(tmp_path, SERVICE).write_bytes(content)
    assert read_state(tmp_path, SERVICE) is None
    assert read_state(tmp_path / "missing", SERVICE) is None


def test_read_state_round_trips(tmp_path):
    state_file_path(tmp_path, SERVICE).write_text(json.dumps({"iterations": 3}))
    assert read_state(tmp_path, SERVICE).iterations == 3


def test_logging_setup_is_idempotent_and_private(tmp_path):
    root = logging.getLogger()
    before_handlers, before_level, before_umask = list(root.handlers), root.level, os.umask(0)
    try:
        setup_service_logging(tmp_path / "x.log", 4096, 1, "DEBUG")
        setup_service_logging(tmp_path / "x.log", 4096, 1, "WARNING")
        setup_command_logging()
        added = [h for h in root.handlers if h not in before_handlers]
        assert len(added) == 1 and root.level == logging.WARNING
        logging.getLogger("sleepguard.test").warning("written %d", 1)
        added[0].flush()
        assert stat.S_IMODE((tmp_path / "x.log").stat().st_mode) == 0o600
        assert (tmp_path / "x.log").read_text().endswith(" WARNING written 1\n")
    finally:
        for handler in root.handlers[:]:
            if handler not in before_handlers:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(before_level)
        os.umask(before_umask)


def test_unchanged_rounds_write_the_state_file_once_and_the_last_run_stays_right(start_service, data_dir):
    service = start_service(interval=0.005, DEMO_CHANGE_EVERY=100, STATE_WRITE_INTERVAL=3600, LOG_LEVEL="DEBUG")
    path = state_file_path(data_dir, SERVICE)
    wait_for_state(data_dir, lambda s: s["iterations"] == 300)
    # Hundreds of unchanged rounds after the last change, well past read_state's second of slack.
    wait_until_logged = time.monotonic() + 20
    while "DEBUG tick 700\n" not in log_text(data_dir):
        assert time.monotonic() < wait_until_logged, "the service never got to round 700"
        time.sleep(0.05)
    raw = json.loads(path.read_text())
    shown = read_state(data_dir, SERVICE)
    service.send_signal(signal.SIGTERM)
    assert wait_for_exit(service) < 1.5

    rounds = re.findall(r" (INFO|DEBUG) tick (\d+)$", log_text(data_dir), re.M)
    # Written, and logged at INFO, only on the first round and the three rounds whose figures changed.
    assert [int(number) for level, number in rounds if level == "INFO"] == [1, 100, 200, 300]
    assert len(rounds) >= 700  # every other round went to DEBUG only
    assert (raw["iterations"], raw["last_summary"], raw["last_figures"]) == (300, "tick 300", {"phase": 3})
    # The status takes the last run from the file's mtime, touched every round: not the time of the last write.
    assert shown.last_run_at > raw["last_run_at"]
    assert parse_utc_time(shown.last_run_at) > datetime.now(timezone.utc) - timedelta(seconds=5)
    assert parse_utc_time(shown.last_run_at) - parse_utc_time(raw["last_run_at"]) > timedelta(seconds=1)
