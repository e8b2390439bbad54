"""Auto-restore: watch for a wipe and put the data back, at most once per wipe, never over newer data.

Every RESTORE_CHECK_INTERVAL, and at once when woken (SIGUSR1 from the keep-alive or the
backup service), it reads the back end and judges the read against the newest good backup.
Only a "wipe" verdict is restored; an unreachable or garbled back end is "unknown" and left
alone, a large drop is held for the owner, and a "foreign" back end (data the backup does not
know, another back end, a legacy backup) is never written to: the owner decides. After a complete, verified restore it asks the
backup service for a fresh backup. A restore that fails backs off: 1, 2, 4 ... checks skipped.
While another restore of DATA_DIR runs (restore_simple.py), the check is skipped: a second
restore beside it would race it.
Outcomes in the state file: ok | unknown | held | foreign | no_backup | restored | restore_failed | backing_off |
restore_running.
"""

import dataclasses
import logging
import signal
import time

from . import alerts
from .client import BackendClient
from .exceptions import BackendError, RestoreRunning, SleepguardError
from .pins import restored_pins_path
from .processes import signal_service
from .restore_lock import running_restore
from .apply import restore_now
from .runner import run_service
from .services import AUTO_BACKUP, AUTO_RESTORE
from .snapshot import utc_now_iso
from .state import Iteration, restore_figures_at_start
from .store import BackupStore
from .takeover import Takeover
from .urls import without_credentials
from .wording import (ACCEPT_CURRENT_HINT, ACCEPT_SHRINK_HINT, RESTORE_INTO_HINT, first_owner_back, not_complete_note,
                      plan_warnings, restore_counts, restored_line, some)

log = logging.getLogger(__name__)

SERVICE = AUTO_RESTORE.name
LOG_NAME = AUTO_RESTORE.log_name
BACKUP_SERVICE = AUTO_BACKUP.name
MAX_SKIPPED_CHECKS = 32
NAMES_SHOWN = 5


class AutoRestore:
    """One wipe check per iteration, a restore when it is a wipe, and the back-off after failures."""

    def __init__(self, settings, client):
        self.settings = settings
        self.client = client  # one pooled session for every check and restore of the service's life
        self.failures_in_a_row = 0
        self.checks_to_skip = 0
        # A restore the last run did stays said: an incomplete one until a check finds the data back.
        self.figures = restore_figures_at_start(settings.data_dir, without_credentials(settings.backend_url) or None)
        self.takeover = Takeover(settings)

    def answer(self, outcome, summary):
        """The run_once result: outcome, summary and every figure, back-off included."""
        self.figures.restore_failures_in_a_row, self.figures.checks_to_skip = self.failures_in_a_row, self.checks_to_skip
        return Iteration(outcome, summary, dataclasses.replace(self.figures, users_needing_pin=list(
            self.figures.users_needing_pin)), warn=outcome == "foreign")

    def run_once(self, context):
        waiting = self.takeover.step(context.stopping)
        if waiting:  # a new watcher judges nothing before it took over from the off-site copies
            return self.answer("taking_over", waiting)
        running = running_restore(self.settings.data_dir)
        if running is not None:
            return self.answer("restore_running", f"a restore is already running (PID {running['pid'] or '?'}, "
                                                  f"{running['users_done']} of {running['users_total']} users): "
                                                  "check skipped")
        if self.checks_to_skip and not context.woken:
            self.checks_to_skip -= 1
            return self.answer("backing_off", f"backing off after {self.failures_in_a_row} failed restores in a row: "
                                              f"check skipped, {self.checks_to_skip} more to skip")
        if self.checks_to_skip:
            log.info("woken: checking now although backing off")
        self.figures.last_check_at = utc_now_iso()
        try:
            current = self.client.read_snapshot()
        except BackendError as exc:
            self.figures.unknown_reads += 1
            self.figures.last_verdict, self.figures.last_reason = "unknown", str(exc)
            return self.answer("unknown", f"back end state unknown: {exc}; no restore")
        # The usual check finds the backup's own content: then the store parses none of its records.
        judgement, backup = BackupStore(self.settings).judge(current)
        if judgement.verdict == "first":
            self.figures.last_verdict = None
            return self.answer("no_backup", "no good backup yet: nothing to compare the back end with")
        self.record_check(judgement)
        if judgement.verdict == "wipe":
            return self.restore(context, backup, current, judgement.reason)
        counts = current.counts()
        if judgement.verdict == "large_drop":
            self.figures.large_drops_held += 1
            return self.answer("held", f"large drop held for the owner, not restored: {judgement.reason} "
                                       f"(accept it with {ACCEPT_SHRINK_HINT})")
        if judgement.verdict == "foreign":
            # Nothing is written into a back end the backup never saw holding its data: the owner decides.
            self.figures.foreign_held += 1
            return self.answer("foreign", f"not restored, the back end is not the backup's: {judgement.reason}; "
                                          f"keep it as it is with {ACCEPT_CURRENT_HINT}, or restore into it with "
                                          f"{RESTORE_INTO_HINT}")
        after_all = ""
        if self.figures.last_restore_complete is False and judgement.verdict in ("unchanged", "changed"):
            # A restore counted failed when only its verifying read went wrong (a 502 at that instant):
            # nothing is missing now, so it was complete, and the status must stop calling it failed.
            after_all = "; the last restore is complete after all"
            figures = self.figures
            figures.restores, figures.last_restore_complete = figures.restores + 1, True
            figures.last_restore_summary = f"{figures.last_restore_summary}{after_all}"
        self.failures_in_a_row = self.checks_to_skip = 0
        if context.woken and judgement.verdict == "changed" and self.ask_for_fresh_backup():
            # Woken by a restart that was no wipe, and the back end holds records the backup lacks (new ids, say):
            # until they are backed up, the backup service looks for users that are gone and misses the next sleep.
            after_all += "; asked the backup service for a fresh backup"
        return self.answer("ok", f"no wipe ({judgement.verdict}): the back end holds {counts['users']} users, "
                                 f"{counts['customers']} customers{after_all}")

    def ask_for_fresh_backup(self):
        """Wake the backup service for a backup of what the back end holds now; True when it was running."""
        if not signal_service(self.settings.data_dir, BACKUP_SERVICE, signal.SIGUSR1):
            return False
        self.figures.fresh_backup_asked += 1
        return True

    def record_check(self, judgement):
        """What this check found, as the verdict reads it from the state file."""
        figures = self.figures
        figures.last_verdict, figures.last_reason = judgement.verdict, judgement.reason
        figures.missing_users, figures.emptied_owners = list(judgement.missing_users), list(judgement.emptied_owners)
        figures.missing_customers = [list(key) for key in judgement.missing_customers]

    def restore(self, context, backup, current, reason):
        """Restore from the newest good backup, planned on the read that found the wipe; verify, report."""
        self.figures.wipes_seen += 1
        log.warning("wipe detected: %s; restoring from %s", reason, backup.meta.get("path"))
        started = time.monotonic()
        try:
            # The PIN file never holds a restore up: when it may not be used, restored users get new random PINs.
            report = restore_now(self.settings, backup, client=self.client, current=current,
                                 stopping=context.stopping, without_bad_pins_file=True)
        except RestoreRunning as exc:
            # restore_simple.py started between the look at the top of run_once and here: not a failure of ours.
            return self.answer("restore_running", f"{exc}: check skipped")
        except SleepguardError as exc:
            return self.failed(f"restore failed after {time.monotonic() - started:.1f} s: {exc}")
        result = report.result
        summary = restore_counts(result, time.monotonic() - started) if result is not None else \
            f"restore: nothing to create in {time.monotonic() - started:.1f} s"
        needing_pin = result.pins_to_hand_out if result is not None else []
        self.figures.last_restore_at, self.figures.users_needing_pin = utc_now_iso(), needing_pin
        self.figures.pins_file_problem = report.pins_file_problem or None
        pin_note = f"; {len(needing_pin)} users need their new PIN: {some(needing_pin, NAMES_SHOWN)}" \
            if needing_pin else ""
        if report.pins_file_problem:
            pin_note += f" (the PIN file was not used: {report.pins_file_problem})"
        # Who is back first, and what the owner must check: PIN keys matched up to case, money fields left out.
        pin_note += "".join(f"; {line}" for line in [first_owner_back(result), *plan_warnings(report.plan)] if line)
        if not report.complete:
            failures = result.failures if result is not None else []
            return self.failed(f"{summary}; {not_complete_note(failures, report.missing, NAMES_SHOWN)}{pin_note}")
        self.failures_in_a_row = self.checks_to_skip = 0
        self.figures.restores, self.figures.last_restore_complete = self.figures.restores + 1, True
        summary = f"{summary}; verified complete{pin_note}"
        self.figures.last_restore_summary = summary
        if result is not None and (result.users_created or result.customers_created):
            # A one-off event, told at once: the owner hears how much came back and who needs a new PIN.
            alerts.announce(self.settings, "warning" if needing_pin else "info",
                            restored_line(result.users_created, result.customers_created, needing_pin,
                                          restored_pins_path(self.settings.data_dir)))
        if self.ask_for_fresh_backup():
            summary += "; asked the backup service for a fresh backup"
        return self.answer("restored", summary)

    def failed(self, summary):
        """Count a failed restore and skip the next 1, 2, 4 ... checks, so it never loops hot."""
        self.failures_in_a_row += 1
        self.checks_to_skip = min(2 ** (self.failures_in_a_row - 1), MAX_SKIPPED_CHECKS)
        figures = self.figures
        figures.failed_restores, figures.last_restore_complete = figures.failed_restores + 1, False
        figures.last_restore_summary = summary
        wait = self.checks_to_skip * self.settings.restore_check_interval
        return self.answer("restore_failed", f"{summary}; backing off: skipping the next {self.checks_to_skip} "
                                             f"checks ({wait:g} s)")


def run(settings):
    """Watch for wipes until SIGTERM; return the exit code."""
    with BackendClient(settings) as client:
        return run_service(SERVICE, LOG_NAME, settings, settings.restore_check_interval,
                           AutoRestore(settings, client).run_once)
