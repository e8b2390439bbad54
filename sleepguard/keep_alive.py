"""Keep-alive: ping the back end so the host never idles into sleep, and wake the restore service when it came back.

Each round it also computes the verdict and tells it (voice.py): alerts and the heartbeat.
A failed ping followed by an answer, or a slow first answer (a cold start), means the host
may have restarted empty: the restore service is woken at once (SIGUSR1) instead of
sleeping out its interval. Only that transition wakes it, never a steady healthy ping.
"""

import logging
import time

from . import restart
from .client import BackendClient
from .exceptions import BackendError
from .restore_lock import running_restore
from .runner import run_service
from .services import KEEP_ALIVE
from .snapshot import utc_now_iso
from .state import Iteration, KeepAliveFigures
from .voice import Voice

log = logging.getLogger(__name__)

SERVICE = KEEP_ALIVE.name
LOG_NAME = KEEP_ALIVE.log_name


class KeepAlive:
    """One ping per iteration; remembers enough of the last ones to see the host come back."""

    def __init__(self, settings, client):
        self.settings = settings
        self.client = client
        self.consecutive_failures = 0
        self.last_ok_at = None  # monotonic time the last answer came
        self.last_ok_iso = None
        self.last_was_slow = False
        self.last_restart_seen_at = None
        self.wake = restart.PendingWake(settings.data_dir)
        self.pings_ok = 0
        self.pings_failed = 0
        self.voice = Voice(settings)

    def ping(self):
        """GET /api/health (the client retries, within READ_TIMEOUT); (body, latency, '') or (None, None, why not)."""
        try:
            body, latency = self.client.health()
        except BackendError as exc:
            return None, None, str(exc)
        return body, latency, ""

    def came_back(self, latency, asked_at):
        """Why this answer means the host may have restarted, or '' when it does not (restart.came_back)."""
        since_last_ok = None if self.last_ok_at is None else asked_at - self.last_ok_at
        # Looked at only for a slow answer: our own restore holds the server's event loop while it hashes PINs.
        restoring = latency > self.settings.slow_answer_seconds and running_restore(self.settings.data_dir) is not None
        return restart.came_back(self.consecutive_failures, latency, self.settings.slow_answer_seconds,
                                 since_last_ok, self.last_was_slow, self.settings.keep_alive_interval, restoring)

    def wake_restore_service(self, why):
        """Wake the restore service and log one line saying so; a wake it could not take is sent next round."""
        self.last_restart_seen_at = utc_now_iso()
        if self.wake.ask(why):
            log.warning("%s; woke the restore service", why)
        else:
            log.warning("%s; the restore service is not running, so nothing was woken yet: trying again next round",
                        why)

    def run_once(self, context):
        waiting = self.wake.pending
        if waiting and self.wake.deliver():
            log.warning("%s; woke the restore service at last", waiting)
        asked_at = time.monotonic()
        body, latency, reason = self.ping()
        if latency is None:
            self.consecutive_failures += 1
            self.pings_failed += 1
            outcome = "failed"
            summary = f"health check failed ({self.consecutive_failures} in a row): {reason}"
        else:
            why = self.came_back(latency, asked_at)
            if why:
                self.wake_restore_service(why)
            self.consecutive_failures = 0
            self.pings_ok += 1
            self.last_ok_at, self.last_ok_iso = time.monotonic(), utc_now_iso()
            self.last_was_slow = latency > self.settings.slow_answer_seconds
            outcome = "ok"
            summary = f"health ok in {latency:.3f} s" + (" (slow)" if self.last_was_slow else "")
        # This round's ping is the verdict's health answer: the back end is not asked twice.
        verdict = self.voice.tell(health=(body, latency, reason))
        figures = KeepAliveFigures(latency_seconds=None if latency is None else round(latency, 3),
                                   slow=latency is not None and self.last_was_slow,
                                   consecutive_failures=self.consecutive_failures, last_ok_at=self.last_ok_iso,
                                   last_restart_seen_at=self.last_restart_seen_at, wakes_sent=self.wake.sent,
                                   pings_ok=self.pings_ok, pings_failed=self.pings_failed, last_error=reason or None,
                                   verdict=verdict.word, verdict_reasons=[r.kind for r in verdict.reasons],
                                   heartbeat=self.voice.last_beat, heartbeats_skipped=self.voice.beats_skipped)
        return Iteration(outcome, summary, figures)


def run(settings):
    """Ping every KEEP_ALIVE_INTERVAL until SIGTERM; return the exit code."""
    with BackendClient(settings) as client:
        keep_alive = KeepAlive(settings, client)
        return run_service(SERVICE, LOG_NAME, settings, settings.keep_alive_interval, keep_alive.run_once)
