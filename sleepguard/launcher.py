"""Start, stop and supervise the three services: detached with verified PID files, or as children in the foreground.

Detached services are started under an exclusive lock on DATA_DIR/.launcher.lock, so launchers
run at the same time take turns and the later ones find the services running; the services'
own PID-file lock refuses duplicates besides. A PID file is acted on only when it names the
live service (pidfile.check_service), so a stale file naming someone else's process never
gets that process signalled. The library returns lines to print; only --foreground logs.
"""

import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from . import auto_backup, auto_restore, keep_alive
from .atomicfile import PRIVATE_FILE_MODE, ensure_private_dir, write_atomic
from .exceptions import SettingsError, SleepguardError
from .flocks import flock_within
from .pidfile import CREATE_TIME_TOLERANCE, check_service, read_pid_file, remove_stale_pid_file, signal_service
from .runner import STOP_SIGNALS
from .settings import PROJECT_DIR, SETTINGS, load_settings, require_backend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Service:
    """One service: its name is its command's file stem; it logs to log_name in DATA_DIR."""

    name: str
    log_name: str

    @property
    def script(self) -> Path:
        return PROJECT_DIR / f"{self.name}.py"


SERVICES = tuple(Service(module.SERVICE, module.LOG_NAME) for module in (keep_alive, auto_backup, auto_restore))
LOCK_NAME = ".launcher.lock"
DEMO_MODULE = "sleepguard.demo_backend"
DEMO_PID_NAME = "demo_backend.pid"
DEMO_URL_NAME = "demo_backend.url"
DEMO_LOG_NAME = "demo_backend.log"

START_DEADLINE = 15.0
STOP_DEADLINE = 10.0
KILL_DEADLINE = 5.0
LOCK_DEADLINE = 60.0
POLL_SECONDS = 0.05
LOG_TAIL_LINES = 6
# --foreground: a crashed child waits 1, 2, 4 ... 60 s before its restart; a child that ran
# this long before crashing counts as healthy again and starts over at 1 s.
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
HEALTHY_RUN_SECONDS = 60.0
SUPERVISE_POLL_SECONDS = 0.2


@dataclass
class LaunchReport:
    """What a start or stop did, as lines for the command to print, and its exit code."""

    lines: list[str] = field(default_factory=list)
    exit_code: int = 0


@dataclass
class _Row:
    """One line of the start table."""

    service: Service
    pid: int | None
    note: str


def log_path(data_dir: Path, service: Service) -> Path:
    """Return where a service's log (and its stdout/stderr) goes."""
    return Path(data_dir) / service.log_name


def _wait_until(done, seconds: float) -> bool:
    """Poll done() until it is true or seconds have passed; return its last answer."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() >= deadline:
            return done()
        time.sleep(POLL_SECONDS)
    return True


@contextmanager
def _launcher_lock(data_dir: Path):
    """Hold DATA_DIR/.launcher.lock: launchers started together take turns instead of racing."""
    fd = os.open(Path(data_dir) / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        if not flock_within(fd, LOCK_DEADLINE, poll=POLL_SECONDS):
            raise SleepguardError(f"another launcher has held {Path(data_dir) / LOCK_NAME} for over "
                                  f"{LOCK_DEADLINE:g} s: is one stuck? try again later")
        yield
    finally:
        os.close(fd)


def _open_log(path: Path) -> int:
    """Open a log for appending, private, for a child's stdout and stderr."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)
    return fd


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _log_tail(path: Path, offset: int, count: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines a child wrote to its log since offset."""
    try:
        with open(path, "rb") as log_file:
            log_file.seek(offset)
            text = log_file.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-count:]


def _spawn(argv: list[str], log_file: Path, env: dict, detached: bool) -> subprocess.Popen:
    """Start a child with stdin closed and stdout/stderr appended to its log, never a pipe."""
    fd = _open_log(log_file)
    try:
        return subprocess.Popen(argv, cwd=PROJECT_DIR, env=env, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                                start_new_session=detached)
    finally:
        os.close(fd)


# --- the demo back end ---

def _demo_paths(data_dir: Path) -> tuple[Path, Path, Path]:
    data_dir = Path(data_dir)
    return data_dir / DEMO_PID_NAME, data_dir / DEMO_URL_NAME, data_dir / DEMO_LOG_NAME


def _verified_demo(data_dir: Path) -> psutil.Process | None:
    """The demo back end named by its PID file, only if alive, started then, and running the demo."""
    info = read_pid_file(_demo_paths(data_dir)[0])
    if info is None or info.pid is None or info.create_time is None:
        return None
    try:
        process = psutil.Process(info.pid)
        if process.status() == psutil.STATUS_ZOMBIE or DEMO_MODULE not in process.cmdline():
            return None
        if abs(process.create_time() - info.create_time) >= CREATE_TIME_TOLERANCE:
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return process


def running_demo_url(data_dir: Path) -> str | None:
    """The URL of the demo back end a launcher started, if it still runs."""
    if _verified_demo(data_dir) is None:
        return None
    try:
        return _demo_paths(data_dir)[1].read_text().strip() or None
    except OSError:
        return None


def _demo_env(settings) -> dict:
    """The demo's environment: admin endpoints on only with the configured token, passed outside argv."""
    env = {key: value for key, value in os.environ.items() if key != "DEMO_API_TOKEN"}
    if settings.api_token:
        env["DEMO_API_TOKEN"] = settings.api_token
    return env


def _start_demo(settings, detached: bool) -> tuple[str, subprocess.Popen | None, str]:
    """Start the demo back end unless one runs; return (URL, the child if we started it, a line)."""
    pid_path, url_path, demo_log = _demo_paths(settings.data_dir)
    running = _verified_demo(settings.data_dir)
    url = running_demo_url(settings.data_dir)
    if running is not None and url:
        return url, None, f"demo back end already running at {url} (PID {running.pid})"
    if running is not None:
        # Its URL file is gone, so nobody can point at it: replace it.
        _end_process(running)
    offset = _log_size(demo_log)
    argv = [sys.executable, "-m", DEMO_MODULE, "--port", "0", "--seed-demo"]
    process = _spawn(argv, demo_log, _demo_env(settings), detached)
    create_time = psutil.Process(process.pid).create_time()
    write_atomic(pid_path, f"{process.pid}\n{create_time!r}\n".encode("ascii"))

    def url_written():
        return process.poll() is not None or any(
            line.startswith("http") for line in _log_tail(demo_log, offset, count=1000))

    _wait_until(url_written, START_DEADLINE)
    url = next((line.strip() for line in _log_tail(demo_log, offset, count=1000) if line.startswith("http")), "")
    if not url:
        _end_children([process])
        pid_path.unlink(missing_ok=True)
        tail = "\n  ".join(_log_tail(demo_log, offset))
        raise SleepguardError(f"the demo back end did not start; last lines of {demo_log}:\n  {tail}")
    write_atomic(url_path, f"{url}\n".encode("ascii"))
    return url, process, f"demo back end started at {url} (PID {process.pid}), seeded with a demo shop"


def _stop_demo(data_dir: Path) -> list[str]:
    """Stop the verified demo back end; a PID file naming anything else is removed, its process untouched."""
    pid_path, url_path, _demo_log = _demo_paths(data_dir)
    if not pid_path.exists():
        return []
    process = _verified_demo(data_dir)
    if process is None:
        line = "demo back end: not running; removed its stale PID file"
    else:
        _end_process(process)
        line = f"stopped the demo back end (PID {process.pid})"
    pid_path.unlink(missing_ok=True)
    url_path.unlink(missing_ok=True)
    return [line]


def _exited(process: psutil.Process) -> bool:
    """Tell whether a process has ended; a zombie has, whenever its parent gets round to reaping it."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_or_kill(processes: list[psutil.Process]) -> tuple[list, list]:
    """Wait STOP_DEADLINE for signalled processes to exit, then SIGKILL the rest; return (killed, survivors).

    psutil pins each process by its start time, so a PID reused meanwhile is never signalled.
    """
    _wait_until(lambda: all(_exited(process) for process in processes), STOP_DEADLINE)
    killed = [process for process in processes if not _exited(process)]
    for process in killed:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    _wait_until(lambda: all(_exited(process) for process in killed), KILL_DEADLINE)
    return killed, [process for process in killed if not _exited(process)]


def _end_process(process: psutil.Process) -> None:
    """SIGTERM a verified process, SIGKILL it if it lingers."""
    try:
        process.terminate()
    except psutil.NoSuchProcess:
        return
    _wait_or_kill([process])


# --- starting ---

def _service_env(settings, backend_url: str | None) -> dict:
    """The children's environment: ours plus every setting of the launcher, so they run with the same ones."""
    env = dict(os.environ)
    for name in SETTINGS:
        env[name] = str(getattr(settings, name.lower()))
    env["DATA_DIR"] = str(Path(settings.data_dir).resolve())
    if backend_url:
        env.update(BACKEND_URL=backend_url, SNAPSHOT_URL=f"{backend_url}/api/admin/snapshot")
    # Refuse here, with one clear line, what the children would refuse.
    load_settings(environ=env)
    return env


def _start_missing(data_dir: Path, env: dict, detached: bool) -> tuple[list[_Row], list[str], dict]:
    """Start each service that does not run and wait for its verified PID file.

    Returns the table rows, lines about failures, and {service name: Popen} of the children started.
    """
    rows, problems, started = {}, [], {}
    offsets = {}
    for service in SERVICES:
        status = check_service(data_dir, service.name)
        if status.state == "running":
            rows[service.name] = _Row(service, status.pid, "already running")
            continue
        if status.state == "stale":
            remove_stale_pid_file(data_dir, service.name)
        offsets[service.name] = _log_size(log_path(data_dir, service))
        started[service.name] = _spawn([sys.executable, str(service.script)], log_path(data_dir, service),
                                       env, detached)

    def settled(name):
        status = check_service(data_dir, name)
        return (status.state == "running" and status.pid == started[name].pid) or started[name].poll() is not None

    _wait_until(lambda: all(settled(name) for name in started), START_DEADLINE)
    for service in SERVICES:
        if service.name not in started:
            continue
        process, status = started[service.name], check_service(data_dir, service.name)
        if status.state == "running" and status.pid == process.pid:
            rows[service.name] = _Row(service, process.pid, "started")
        elif status.state == "running":
            # Started by someone else meanwhile; ours refused to run twice.
            rows[service.name] = _Row(service, status.pid, "already running")
        elif process.poll() is not None:
            rows[service.name] = _Row(service, None, f"exited at once (exit code {process.returncode})")
            tail = _log_tail(log_path(data_dir, service), offsets[service.name])
            problems.append(f"{service.name} exited at once (exit code {process.returncode}); "
                            f"last lines of {log_path(data_dir, service)}:")
            problems += [f"  {line}" for line in tail] or ["  (nothing logged)"]
        else:
            rows[service.name] = _Row(service, process.pid, "not confirmed")
            problems.append(f"{service.name} (PID {process.pid}) wrote no PID file within {START_DEADLINE:g} s; "
                            f"see {log_path(data_dir, service)}")
    return [rows[service.name] for service in SERVICES], problems, started


def _table(rows: list[_Row]) -> list[str]:
    cells = [("service", "PID", "state", "log file")]
    cells += [(row.service.name, str(row.pid or "-"), row.note, row.service.log_name) for row in rows]
    widths = [max(len(line[column]) for line in cells) for column in range(3)]
    return ["  ".join([cell.ljust(width) for cell, width in zip(line, widths)] + [line[3]]) for line in cells]


def _start_locked(settings, demo: bool) -> LaunchReport:
    data_dir = Path(settings.data_dir)
    report = LaunchReport()
    backend_url = demo_started = None
    if demo:
        backend_url, demo_started, line = _start_demo(settings, detached=True)
        report.lines.append(line)
    try:
        env = _service_env(settings, backend_url)
    except SettingsError:
        if demo_started is not None:
            _stop_demo(data_dir)
        raise
    rows, problems, _started = _start_missing(data_dir, env, detached=True)
    report.lines += _table(rows)
    if all(row.note == "already running" for row in rows):
        report.lines.append("all three services were already running: nothing started")
    report.lines += problems
    report.lines.append(f"log files are in {data_dir.resolve()}")
    report.lines.append("status: python3 backup_status.py")
    report.lines.append(f"logs:   tail -F {data_dir.resolve() / auto_restore.LOG_NAME}")
    report.exit_code = 1 if problems else 0
    return report


def start_services(settings, demo: bool = False) -> LaunchReport:
    """Start, detached, each of the three services that is not running (and the demo back end with demo)."""
    if not demo:
        require_backend(settings)
    data_dir = ensure_private_dir(settings.data_dir)
    with _launcher_lock(data_dir):
        return _start_locked(settings, demo)


# --- stopping ---

def _sigterm_verified(data_dir: Path, service: Service) -> psutil.Process | None:
    """SIGTERM the service if its PID file names it, alive; return its process to wait for."""
    status = check_service(data_dir, service.name)
    if status.state != "running":
        return None
    try:
        # Taken before signalling, so the wait below follows this very process, not its PID.
        process = psutil.Process(status.pid)
    except psutil.NoSuchProcess:
        return None
    return process if signal_service(data_dir, service.name, signal.SIGTERM) else None


def _stop_locked(data_dir: Path) -> LaunchReport:
    report = LaunchReport()
    signalled = {}
    for service in SERVICES:
        process = _sigterm_verified(data_dir, service)
        if process is not None:
            signalled[service.name] = process
            continue
        status = check_service(data_dir, service.name)
        if status.state == "stale":
            removed = remove_stale_pid_file(data_dir, service.name)
            action = "removed its stale PID file" if removed else "left its PID file"
            report.lines.append(f"{service.name}: not running; {action} ({status.reason})")
        else:
            report.lines.append(f"{service.name}: not running")
    killed, survivors = _wait_or_kill(list(signalled.values()))
    for name, process in signalled.items():
        if process in survivors:
            how = "could NOT be stopped"
            report.exit_code = 1
        elif process in killed:
            how = f"killed (still running {STOP_DEADLINE:g} s after SIGTERM)"
        else:
            how = "stopped"
        # A killed service leaves its PID file behind.
        remove_stale_pid_file(data_dir, name)
        report.lines.append(f"{name}: {how} (PID {process.pid})")
    report.lines += _stop_demo(data_dir)
    return report


def stop_services(settings) -> LaunchReport:
    """SIGTERM each verified service (SIGKILL after a timeout) and the demo back end; never a foreign PID."""
    data_dir = Path(settings.data_dir)
    if not data_dir.is_dir():
        return LaunchReport([f"nothing to stop: {data_dir} does not exist"])
    with _launcher_lock(data_dir):
        return _stop_locked(data_dir)


def restart_services(settings, demo: bool = False) -> LaunchReport:
    """Stop the services, then start them again."""
    if not demo:
        require_backend(settings)
    data_dir = ensure_private_dir(settings.data_dir)
    with _launcher_lock(data_dir):
        stopped = _stop_locked(data_dir)
        started = _start_locked(settings, demo)
    return LaunchReport(stopped.lines + started.lines, max(stopped.exit_code, started.exit_code))


# --- the foreground supervisor ---

@dataclass
class _Child:
    """A supervised service: its process (None while waiting to restart) and its crash count."""

    service: Service
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restart_at: float = 0.0
    crashes: int = 0


def _supervise(children: list[_Child], data_dir: Path, env: dict, demo: subprocess.Popen | None,
               received: list[int]) -> None:
    """Restart crashed children with backoff until a stop signal is in received."""
    demo_reported = False
    while not received:
        now = time.monotonic()
        for child in children:
            if child.process is not None and child.process.poll() is not None:
                ran = now - child.started_at
                if ran >= HEALTHY_RUN_SECONDS:
                    child.crashes = 0
                delay = min(BACKOFF_FIRST * 2 ** child.crashes, BACKOFF_MAX)
                child.crashes += 1
                log.warning("%s exited with code %s after %.1f s; restarting in %g s (see %s)",
                            child.service.name, child.process.returncode, ran, delay,
                            log_path(data_dir, child.service))
                child.process, child.restart_at = None, now + delay
            elif child.process is None and now >= child.restart_at and not received:
                child.process = _spawn([sys.executable, str(child.service.script)],
                                       log_path(data_dir, child.service), env, detached=False)
                child.started_at = now
                log.info("restarted %s (PID %d)", child.service.name, child.process.pid)
        if demo is not None and demo.poll() is not None and not demo_reported:
            log.error("the demo back end exited with code %s; it is not restarted", demo.returncode)
            demo_reported = True
        # Polling, not waiting on an Event: the signal handler only appends to received.
        time.sleep(SUPERVISE_POLL_SECONDS)


def _end_children(processes: list[subprocess.Popen]) -> None:
    """SIGTERM our children, SIGKILL those still there after STOP_DEADLINE, and reap them all."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + STOP_DEADLINE
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("PID %d did not stop within %g s: killing it", process.pid, STOP_DEADLINE)
            process.kill()
            process.wait()


def run_foreground(settings, demo: bool = False) -> int:
    """Run the three services as children, restarting crashed ones, until SIGTERM/SIGINT; return the exit code."""
    if not demo:
        require_backend(settings)
    data_dir = ensure_private_dir(settings.data_dir)
    demo_process = None
    children = [_Child(service) for service in SERVICES]
    received = []
    # Installed before any child exists, so a stop signal at any moment still ends them all.
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum))
                for signum in STOP_SIGNALS}
    try:
        with _launcher_lock(data_dir):
            running = [s.name for s in SERVICES if check_service(data_dir, s.name).state == "running"]
            if running:
                log.error("already running detached: %s; stop them first with --stop", ", ".join(running))
                return 1
            backend_url = None
            if demo:
                backend_url, demo_process, line = _start_demo(settings, detached=False)
                log.info("%s", line)
            env = _service_env(settings, backend_url)
            rows, problems, started = _start_missing(data_dir, env, detached=False)
        for child in children:
            child.process, child.started_at = started.get(child.service.name), time.monotonic()
        for row in rows:
            log.info("%s: %s (PID %s), log %s", row.service.name, row.note, row.pid, log_path(data_dir, row.service))
        for line in problems:
            log.warning("%s", line)
        _supervise(children, data_dir, env, demo_process, received)
        log.info("received %s: stopping the services", signal.Signals(received[0]).name)
    finally:
        _end_children([child.process for child in children if child.process is not None]
                      + ([demo_process] if demo_process is not None else []))
        if demo_process is not None:
            for path in _demo_paths(data_dir)[:2]:
                path.unlink(missing_ok=True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
