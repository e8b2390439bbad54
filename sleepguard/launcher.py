"""Start, stop and supervise the three services: detached with verified PID files, or as children in the foreground.

Detached services are started under an exclusive lock on DATA_DIR/.launcher.lock, so launchers
run at the same time take turns and the later ones find the services running; the services'
own PID-file lock refuses duplicates besides. A PID file is acted on only when it names the
live service of this very DATA_DIR (processes.verified_process), so a stale file naming someone
else's process, or a copied folder's file naming the original's, never gets that process
signalled. The library returns lines to print; only --foreground logs, and the one line saying a
plain start uses the running demo (so the table on stdout stays the same).

With --demo the demo back end and the services in demo mode keep every file in DATA_DIR/demo
(demo_mode.py); --restart restarts the services only, so the demo keeps its port, token and data.
"""

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .atomicfile import PRIVATE_FILE_MODE, ensure_private_dir, write_atomic
from .demo_mode import demo_settings, demo_token, refuse_mixing, running_demo, uses_demo
from .exceptions import SettingsError, SleepguardError
from .flocks import flock_within
from .processes import (POLL_SECONDS, STOP_DEADLINE, Signals, check_service, remove_stale_pid_file, running_demo_url,
                        spawn, spawn_holding_pid_file, stop_children, stop_processes, verified_process, wait_until)
from .services import (AUTO_RESTORE, DEMO, SERVICES, Service, demo_folder_path, demo_token_path, demo_url_path, log_path,
                       pid_file_path)
from .settings import SETTINGS, load_settings, require_backend

log = logging.getLogger(__name__)

LOCK_NAME = ".launcher.lock"
START_DEADLINE = 15.0
LOCK_DEADLINE = 60.0
LOG_TAIL_LINES = 6
# --foreground: a crashed child waits 1, 2, 4 ... 60 s before its restart; a child that ran
# this long before crashing counts as healthy again and starts over at 1 s.
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
HEALTHY_RUN_SECONDS = 60.0


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


# --- the demo back end ---
# It runs for DATA_DIR but keeps every file in its own folder (services.demo_folder_path), which is
# also the services' DATA_DIR in demo mode: demo backups never mix with a real shop's.

def _demo_env(folder: Path) -> dict:
    """The demo's environment: ours, without a token (it reads its own from the token file), DATA_DIR its folder."""
    env = {key: value for key, value in os.environ.items() if key != "DEMO_API_TOKEN"}
    env["DATA_DIR"] = str(folder.resolve())
    return env


def _ensure_demo_token(folder: Path) -> Path:
    """The demo's own random admin token, kept 0600 across restarts; never API_TOKEN, which may be a real one."""
    path = demo_token_path(folder)
    if not demo_token(folder):
        write_atomic(path, f"{secrets.token_urlsafe(24)}\n".encode("ascii"))
    return path


def _previous_port(folder: Path) -> int:
    """The port the demo last had, if it is free: the same URL keeps its backups its own (0: any free port)."""
    try:
        port = urlsplit(demo_url_path(folder).read_text().strip()).port
    except (OSError, ValueError):
        return 0
    if not port:
        return 0
    with socket.socket() as probe:
        # As the demo binds: a port its last run left in TIME_WAIT is free to it.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


def _start_demo(settings, detached: bool) -> tuple[str, subprocess.Popen | None, str]:
    """Start the demo back end unless one runs; return (URL, the child if we started it, a line)."""
    folder = ensure_private_dir(demo_folder_path(settings.data_dir))
    demo_log = log_path(folder, DEMO)
    running = verified_process(folder, DEMO.name)[1]
    url = running_demo_url(folder)
    if running is not None and url:
        return url, None, f"demo back end already running at {url} (PID {running.pid}), its data kept"
    if running is not None:
        # Its URL file is gone, so nobody can point at it: replace it.
        stop_processes([running])
        remove_stale_pid_file(folder, DEMO.name)
    offset = _log_size(demo_log)
    # Backups judge a back end by its URL: a demo on a new port would be another back end to them.
    port = _previous_port(folder)
    argv = [sys.executable, "-m", DEMO.module, "--port", str(port), "--seed-demo", "--token-file",
            str(_ensure_demo_token(folder))]
    process = spawn_holding_pid_file(folder, DEMO.name, argv, demo_log, _demo_env(folder), detached)

    def url_written():
        return process.poll() is not None or any(
            line.startswith("http") for line in _log_tail(demo_log, offset, count=1000))

    wait_until(url_written, START_DEADLINE)
    url = next((line.strip() for line in _log_tail(demo_log, offset, count=1000) if line.startswith("http")), "")
    if not url:
        stop_children([process])
        remove_stale_pid_file(folder, DEMO.name)
        tail = "\n  ".join(_log_tail(demo_log, offset))
        raise SleepguardError(f"the demo back end did not start; last lines of {demo_log}:\n  {tail}")
    write_atomic(demo_url_path(folder), f"{url}\n".encode("ascii"))
    return url, process, f"demo back end started at {url} (PID {process.pid}), seeded with a demo shop"


def _demo_lines(folder: Path) -> list[str]:
    """Where the demo's files are, and the exact call that makes the demo "host" fall asleep."""
    folder = folder.resolve()
    return [f"demo files (backups, logs, PINs) are in {folder}",
            f'make it sleep: curl -X POST -H "Authorization: Bearer $(cat {demo_token_path(folder)})" '
            f'"$(cat {demo_url_path(folder)})/api/admin/sleep"']


def _stop_demo(data_dir: Path) -> list[str]:
    """Stop the verified demo back end; a PID file naming anything else is removed, its process untouched."""
    if not pid_file_path(data_dir, DEMO.name).exists():
        return []
    status, process = verified_process(data_dir, DEMO.name)
    if process is None:
        removed = remove_stale_pid_file(data_dir, DEMO.name)
        action = "removed its stale PID file" if removed else "left its PID file"
        return [f"demo back end: not running; {action} ({status.reason})"]
    killed, survivors = stop_processes([process])
    remove_stale_pid_file(data_dir, DEMO.name)
    if survivors:
        return [f"the demo back end (PID {process.pid}) could NOT be stopped"]
    return [f"stopped the demo back end (PID {process.pid})"]


def _wants_demo(settings, demo: bool) -> bool:
    """Whether the services are to run on the demo: asked with --demo, or it runs and BACKEND_URL is unset."""
    url = running_demo(settings)
    refuse_mixing(settings, url, demo)
    if demo or uses_demo(settings, url):
        return True
    require_backend(settings)
    return False


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
        started[service.name] = spawn([sys.executable, str(service.command)], log_path(data_dir, service),
                                      env, detached)

    def settled(name):
        status = check_service(data_dir, name)
        return (status.state == "running" and status.pid == started[name].pid) or started[name].poll() is not None

    wait_until(lambda: all(settled(name) for name in started), START_DEADLINE)
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


def _start_locked(settings, demo: bool, asked: bool = True) -> LaunchReport:
    """Start what does not run: in DATA_DIR, or with demo the demo back end and the services in its folder."""
    data_dir = Path(settings.data_dir)
    report = LaunchReport()
    backend_url = demo_started = None
    if demo:
        backend_url, demo_started, line = _start_demo(settings, detached=True)
        report.lines.append(line)
        settings = demo_settings(settings, backend_url)
        data_dir = Path(settings.data_dir)
        if not asked:
            # Logged, so a command shows it on stderr and the table on stdout stays as it is.
            log.warning("BACKEND_URL is not set: using the demo back end at %s (started with --demo)", backend_url)
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
    report.lines.append(f"logs:   tail -F {log_path(data_dir.resolve(), AUTO_RESTORE)}")
    if demo:
        report.lines += _demo_lines(data_dir)
    report.exit_code = 1 if problems else 0
    return report


def start_services(settings, demo: bool = False, fresh: bool = False) -> LaunchReport:
    """Start, detached, each of the three services that is not running (and the demo back end with demo).

    While the demo started by --demo runs and BACKEND_URL is unset, a plain start is a demo start.
    fresh: a newly seeded demo, as restart_services(fresh=True).
    """
    if fresh:
        return restart_services(settings, demo=True, fresh=True)
    if not demo and not settings.backend_url and not Path(settings.data_dir).is_dir():
        require_backend(settings)
    data_dir = ensure_private_dir(settings.data_dir)
    with _launcher_lock(data_dir):
        use_demo = _wants_demo(settings, demo)
        return _start_locked(settings, use_demo, asked=demo)


# --- stopping ---

def _stop_services_locked(data_dir: Path) -> LaunchReport:
    """Stop the verified services of data_dir, leaving any demo back end running."""
    report = LaunchReport()
    verified = {}
    for service in SERVICES:
        status, process = verified_process(data_dir, service.name)
        if process is not None:
            verified[service.name] = process
        elif status.state == "stale":
            removed = remove_stale_pid_file(data_dir, service.name)
            action = "removed its stale PID file" if removed else "left its PID file"
            report.lines.append(f"{service.name}: not running; {action} ({status.reason})")
        else:
            report.lines.append(f"{service.name}: not running")
    killed, survivors = stop_processes(list(verified.values()))
    for name, process in verified.items():
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
    return report


def _stop_locked(data_dir: Path) -> LaunchReport:
    """Stop the verified services of data_dir and its demo back end."""
    report = _stop_services_locked(data_dir)
    report.lines += _stop_demo(data_dir)
    return report


def _has_pid_files(folder: Path) -> bool:
    return any(pid_file_path(folder, program.name).exists() for program in (*SERVICES, DEMO))


def stop_services(settings) -> LaunchReport:
    """SIGTERM each verified service (SIGKILL after a timeout) and the demo back end; never a foreign PID.

    Both DATA_DIR's services and the demo's (in its own folder) are stopped, whichever run.
    """
    data_dir = Path(settings.data_dir)
    if not data_dir.is_dir():
        return LaunchReport([f"nothing to stop: {data_dir} does not exist"])
    folder = demo_folder_path(data_dir)
    with _launcher_lock(data_dir):
        report = LaunchReport()
        for where in (data_dir, folder):
            if _has_pid_files(where) or (where == data_dir and not _has_pid_files(folder)):
                stopped = _stop_locked(where)
                report.lines += stopped.lines
                report.exit_code = max(report.exit_code, stopped.exit_code)
        return report


def restart_services(settings, demo: bool = False, fresh: bool = False) -> LaunchReport:
    """Stop the services, then start them again; the demo back end keeps running, its port, token and data kept.

    fresh: stop the demo too and empty its folder, for a newly seeded demo with a new token.
    """
    if not (demo or fresh) and not settings.backend_url and not Path(settings.data_dir).is_dir():
        require_backend(settings)
    data_dir = ensure_private_dir(settings.data_dir)
    with _launcher_lock(data_dir):
        use_demo = fresh or _wants_demo(settings, demo)
        folder = demo_folder_path(data_dir)
        if fresh:
            stopped = _stop_locked(folder) if folder.is_dir() else LaunchReport()
            shutil.rmtree(folder, ignore_errors=True)
            stopped.lines.append(f"emptied {folder.resolve()}: a new demo shop and token")
        else:
            stopped = _stop_services_locked(folder if use_demo else data_dir)
        started = _start_locked(settings, use_demo, asked=demo or fresh)
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
               signals: Signals) -> None:
    """Restart crashed children with backoff until a stop signal; SIGCHLD or a due restart wakes the wait."""
    demo_reported = False
    while not signals.stopping.is_set():
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
            elif child.process is None and now >= child.restart_at and not signals.stopping.is_set():
                child.process = spawn([sys.executable, str(child.service.command)],
                                      log_path(data_dir, child.service), env, detached=False)
                child.started_at = now
                log.info("restarted %s (PID %d)", child.service.name, child.process.pid)
        if demo is not None and demo.poll() is not None and not demo_reported:
            log.error("the demo back end exited with code %s; it is not restarted", demo.returncode)
            demo_reported = True
        due = [child.restart_at - time.monotonic() for child in children if child.process is None]
        # Nothing to do until a child ends (SIGCHLD), a restart is due, or a stop signal comes.
        signals.wait(max(0.0, min(due)) if due else None)


def run_foreground(settings, demo: bool = False) -> int:
    """Run the three services as children, restarting crashed ones, until SIGTERM/SIGINT; return the exit code."""
    if not demo and not settings.backend_url and not Path(settings.data_dir).is_dir():
        require_backend(settings)
    lock_dir = ensure_private_dir(settings.data_dir)
    demo = _wants_demo(settings, demo)
    # In demo mode the services' files are the demo's, in its folder; the lock stays DATA_DIR's.
    data_dir = ensure_private_dir(demo_folder_path(lock_dir)) if demo else lock_dir
    demo_process = None
    children = [_Child(service) for service in SERVICES]
    # Installed before any child exists, so a stop signal at any moment still ends them all.
    signals = Signals(wake=(signal.SIGCHLD,))
    try:
        with _launcher_lock(lock_dir):
            running = [s.name for s in SERVICES if check_service(data_dir, s.name).state == "running"]
            if running:
                log.error("already running detached: %s; stop them first with --stop", ", ".join(running))
                return 1
            backend_url = None
            if demo:
                backend_url, demo_process, line = _start_demo(settings, detached=False)
                log.info("%s", line)
                settings = demo_settings(settings, backend_url)
            env = _service_env(settings, backend_url)
            rows, problems, started = _start_missing(data_dir, env, detached=False)
        for child in children:
            child.process, child.started_at = started.get(child.service.name), time.monotonic()
        for row in rows:
            log.info("%s: %s (PID %s), log %s", row.service.name, row.note, row.pid, log_path(data_dir, row.service))
        for line in problems:
            log.warning("%s", line)
        _supervise(children, data_dir, env, demo_process, signals)
        log.info("received %s: stopping the services", signal.Signals(signals.stopped_by).name)
    finally:
        killed, survivors = stop_children([child.process for child in children if child.process is not None]
                                          + ([demo_process] if demo_process is not None else []))
        for process in killed:
            if process in survivors:
                log.error("PID %d could NOT be stopped, not even by SIGKILL", process.pid)
            else:
                log.warning("PID %d did not stop within %g s of SIGTERM: killed it", process.pid, STOP_DEADLINE)
        for child in children:
            # A child killed after the stop deadline leaves its PID file behind.
            remove_stale_pid_file(data_dir, child.service.name)
        if demo_process is not None:
            remove_stale_pid_file(data_dir, DEMO.name)
        signals.close()
    return 0
