"""The interval loop every service runs: private rotated log, PID file, signals, state file.

``run_once(context)`` is called once per iteration with a ServiceContext:
  context.iteration  1 on the first call, then counting up;
  context.woken      True when SIGUSR1 cut the previous wait short (the keep-alive saw the
                     host come back), so this iteration should look at once;
  context.stopping   a threading.Event set as soon as SIGTERM or SIGINT arrives. A run_once
                     in progress may finish, but long work should check
                     ``context.stopping.is_set()`` and return early. Only read it: the signal
                     handler sets it, so waiting on it from the main thread could deadlock.
run_once returns a state.Iteration(outcome, summary, figures), figures being the service's
dataclass from state.py. The summary is logged at INFO (WARNING when the Iteration says warn),
the one line of the iteration, and everything lands, as a
state.ServiceState, in ``DATA_DIR/<service>.state.json`` for the status screen (read_state).
A round whose state differs from the last one written only in ticking fields (state.material)
is no news: the file is then only touched (its mtime is the last run) and rewritten, its line
logged at INFO, at most once every STATE_WRITE_INTERVAL; meanwhile its line goes to DEBUG. So
a day of unchanged data writes a few hundred kB, not megabytes; every change is written and
logged at once, and a warning is always logged.
An exception from run_once is logged as "iteration failed: <reason>",
counted, and the loop goes on. SIGTERM/SIGINT end the loop within a second, even mid-wait;
SIGUSR1 ends the wait at once. Signal handlers only record the signal; the loop acts on it.
"""

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
from .state import Iteration, ServiceState, as_json, material, read_state
from .settings import Settings
from .snapshot import utc_now_iso

__all__ = ["ServiceContext", "StateWriter", "read_state", "run_iteration", "run_service", "state_file_path", "write_state"]

log = logging.getLogger(__name__)


@dataclass
class ServiceContext:
    """What run_once may know about the loop that calls it."""

    service: str
    settings: Settings
    stopping: threading.Event = field(default_factory=threading.Event)
    iteration: int = 0
    woken: bool = False


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


def run_iteration(context: ServiceContext, run_once: Callable, on_wake: Callable | None, state: ServiceState) -> int:
    """Run one iteration and record it in state; return the level its summary is logged at. Never raises."""
    started = time.monotonic()
    state.last_run_at = utc_now_iso()
    try:
        if context.woken and on_wake is not None:
            on_wake()
        result = run_once(context)
        if not isinstance(result, Iteration):
            raise TypeError(f"run_once returned {type(result).__name__}, not an Iteration")
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        log.error("iteration failed: %s", reason)
        log.debug("iteration failure details", exc_info=True)
        state.failures += 1
        state.consecutive_failures += 1
        outcome, summary, figures, level = "failed", f"iteration failed: {reason}", {}, logging.ERROR
    else:
        outcome, summary, figures = str(result.outcome), str(result.summary), result.figures
        level = logging.WARNING if result.warn else logging.INFO
        state.consecutive_failures = 0
    state.last_duration = round(time.monotonic() - started, 3)
    state.last_outcome, state.last_summary = outcome, summary
    # A failed iteration keeps no figures, as before: the status shows its summary.
    state.last_figures = figures
    state.iterations = context.iteration
    return level


def write_state(data_dir: Path, state: ServiceState) -> None:
    """Write a service's state file atomically, for the status screen to read back with read_state."""
    write_json_atomic(state_file_path(data_dir, state.service), as_json(state))


class StateWriter:
    """Writes a service's state file when something in it changed, else on a coarse clock; touches it between."""

    def __init__(self, data_dir: Path, refresh_seconds: float):
        self.data_dir = data_dir
        self.refresh_seconds = refresh_seconds
        self.written = None  # material() of the state last written
        self.written_at = None  # monotonic time of that write

    def is_news(self, state: ServiceState) -> bool:
        """True when this round's state must be written (and its line logged at INFO): a change, or the clock."""
        due = self.written_at is None or time.monotonic() - self.written_at >= self.refresh_seconds
        return due or material(state) != self.written

    def save(self, state: ServiceState, news: bool) -> None:
        """Write the state file (news) or only touch it, so its mtime says when the service last ran."""
        if news:
            write_state(self.data_dir, state)
            self.written, self.written_at = material(state), time.monotonic()
            return
        try:
            os.utime(state_file_path(self.data_dir, state.service))
        except FileNotFoundError:
            # Removed behind our back: write it again now rather than wait for the clock.
            self.save(state, True)


def run_service(service: str, log_name: str, settings: Settings, interval: float,
                run_once: Callable[[ServiceContext], dict], *, on_wake: Callable[[], None] | None = None) -> int:
    """Run run_once every interval seconds until SIGTERM/SIGINT; return the exit code (0).

    Raises ServiceAlreadyRunning when another copy holds the PID file. on_wake, if given,
    is called in the loop (never in the signal handler) before an iteration SIGUSR1 started.
    """
    os.umask(0o077)
    data_dir = ensure_private_dir(settings.data_dir)
    setup_service_logging(data_dir / log_name, settings.log_max_bytes, settings.log_backup_count, settings.log_level)
    context = ServiceContext(service, settings)
    # Handlers first: once the PID file names us, a sibling may send SIGUSR1, whose default action is to kill.
    signals = Signals(stopping=context.stopping)
    try:
        pid_lock = acquire_pid_file(data_dir, service)
    except ServiceAlreadyRunning as exc:
        signals.close()
        log.warning("not starting: %s", exc)
        raise
    state = ServiceState(service=service, pid=os.getpid(), started_at=utc_now_iso())
    writer = StateWriter(data_dir, settings.state_write_interval)
    with pid_lock:
        try:
            log.info("%s started (PID %d), every %g s", service, os.getpid(), interval)
            while not context.stopping.is_set():
                context.iteration += 1
                level = run_iteration(context, run_once, on_wake, state)
                news = writer.is_news(state)
                if level != logging.ERROR:  # run_iteration logged a failure already
                    log.log(level if news or level > logging.INFO else logging.DEBUG, "%s", state.last_summary)
                try:
                    writer.save(state, news)
                except OSError as exc:
                    log.error("could not write state file: %s", exc)
                context.woken = _wait(signals, interval)
        finally:
            signals.close()
            log.info("stopped after %d iterations", context.iteration)
    return 0
