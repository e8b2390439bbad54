"""The interval loop every service runs: private rotated log, PID file, signals, state file.

``run_once(context)`` is called once per iteration with a ServiceContext:
  context.iteration  1 on the first call, then counting up;
  context.woken      True when SIGUSR1 cut the previous wait short (the keep-alive saw the
                     host come back), so this iteration should look at once;
  context.stopping   a threading.Event set as soon as SIGTERM or SIGINT arrives. A run_once
                     in progress may finish, but long work should check
                     ``context.stopping.is_set()`` and return early. Only read it: the signal
                     handler sets it, so waiting on it from the main thread could deadlock.
run_once returns a dict ``{"outcome": "good", "summary": "one line", **figures}``. The
summary is logged at INFO and everything lands in ``DATA_DIR/<service>.state.json`` for
the status screen. An exception from run_once is logged as "iteration failed: <reason>",
counted, and the loop goes on. SIGTERM/SIGINT end the loop within a second, even mid-wait;
SIGUSR1 ends the wait at once. Signal handlers only record the signal; the loop acts on it.
"""

import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .atomicfile import ensure_private_dir, write_json_atomic
from .logsetup import setup_service_logging
from .exceptions import ServiceAlreadyRunning
from .processes import STOP_SIGNALS, Signals, acquire_pid_file
from .services import state_file_path
from .settings import Settings
from .snapshot import utc_now_iso

log = logging.getLogger(__name__)


@dataclass
class ServiceContext:
    """What run_once may know about the loop that calls it."""

    service: str
    settings: Settings
    stopping: threading.Event = field(default_factory=threading.Event)
    iteration: int = 0
    woken: bool = False


def read_state(data_dir: Path, service: str) -> dict | None:
    """Read a service's state file for the status screen; None when missing or garbage."""
    path = state_file_path(data_dir, service)
    try:
        state = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("state file %s is unreadable: %s", path, exc)
        return None
    if not isinstance(state, dict):
        log.warning("state file %s is not a JSON object", path)
        return None
    return state


def _wait(signals: Signals, seconds: float) -> bool:
    """Wait out the interval, logging each signal that ends it early; True when one was a wake-up."""
    woken = False
    for signum in signals.wait(seconds):
        if signum in STOP_SIGNALS:
            log.info("received %s, stopping", signal.Signals(signum).name)
        else:
            log.info("woken by %s", signal.Signals(signum).name)
            woken = True
    return woken


def _run_iteration(context: ServiceContext, run_once: Callable, on_wake: Callable | None, state: dict) -> None:
    """Run one iteration, log its outcome and record it in state; never raises an Exception."""
    started = time.monotonic()
    state["last_run_at"] = utc_now_iso()
    try:
        if context.woken and on_wake is not None:
            on_wake()
        result = run_once(context)
        if not isinstance(result, dict):
            raise TypeError(f"run_once returned {type(result).__name__}, not a dict")
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        log.error("iteration failed: %s", reason)
        log.debug("iteration failure details", exc_info=True)
        state["failures"] += 1
        state["consecutive_failures"] += 1
        outcome, summary, figures = "failed", f"iteration failed: {reason}", {}
    else:
        outcome = str(result.get("outcome", "good"))
        summary = str(result.get("summary", ""))
        figures = {key: value for key, value in result.items() if key not in ("outcome", "summary")}
        log.info("%s", summary)
        state["consecutive_failures"] = 0
    state.update(
        last_duration=round(time.monotonic() - started, 3),
        last_outcome=outcome,
        last_summary=summary,
        # Figures that are not JSON (a datetime, a Path) are kept as their text.
        last_figures=json.loads(json.dumps(figures, default=str)),
        iterations=context.iteration,
    )


def run_service(service: str, log_name: str, settings: Settings, interval: float,
                run_once: Callable[[ServiceContext], dict], *, on_wake: Callable[[], None] | None = None) -> int:
    """Run run_once every interval seconds until SIGTERM/SIGINT; return the exit code (0).

    Raises ServiceAlreadyRunning when another copy holds the PID file. on_wake, if given,
    is called in the loop (never in the signal handler) before an iteration SIGUSR1 started.
    """
    os.umask(0o077)
    data_dir = ensure_private_dir(settings.data_dir)
    setup_service_logging(data_dir / log_name, settings.log_max_bytes, settings.log_backup_count, settings.log_level)
    try:
        pid_lock = acquire_pid_file(data_dir, service)
    except ServiceAlreadyRunning as exc:
        log.warning("not starting: %s", exc)
        raise
    context = ServiceContext(service, settings)
    state = {
        "service": service, "pid": os.getpid(), "started_at": utc_now_iso(),
        "last_run_at": None, "last_duration": None, "last_outcome": None, "last_summary": None,
        "last_figures": {}, "iterations": 0, "failures": 0, "consecutive_failures": 0,
    }
    with pid_lock:
        signals = Signals(stopping=context.stopping)
        try:
            log.info("%s started (PID %d), every %g s", service, os.getpid(), interval)
            while not context.stopping.is_set():
                context.iteration += 1
                _run_iteration(context, run_once, on_wake, state)
                try:
                    write_json_atomic(state_file_path(data_dir, service), state)
                except OSError as exc:
                    log.error("could not write state file: %s", exc)
                context.woken = _wait(signals, interval)
        finally:
            signals.close()
            log.info("stopped after %d iterations", context.iteration)
    return 0
