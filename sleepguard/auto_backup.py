"""Auto-backup: every BACKUP_INTERVAL, sooner when the app reports a save, never of a back end that just restarted.

Each iteration (every TRIGGER_POLL_INTERVAL) looks at GET /api/backup/status first, then:
  - the trigger counter went down, or (API mode, counter at 0) GET /api/users holds none
    of the users of the last good backup: the back end restarted empty. The restore service is
    woken and no backup is taken this round (the store would only hold it aside anyway);
  - a new trigger (something was saved), BACKUP_INTERVAL passed since the last attempt,
    or SIGUSR1 (the restore service asks for a fresh copy): a backup now;
  - otherwise nothing.
Outcomes in the state file: good | unchanged | suspect | failed (a backup was taken),
restarted (counter reset seen, no backup), idle (nothing to do).
"""

import logging
import signal
import time

from .backup import describe, take_backup
from .client import BackendClient
from .exceptions import BackendError
from .pidfile import signal_service
from .runner import run_service
from .store import BackupStore
from .snapshot import utc_now_iso

log = logging.getLogger(__name__)

SERVICE = "auto_backup_super_aggressive"
LOG_NAME = "auto_backup_super_aggressive.log"
RESTORE_SERVICE = "auto_restore_service"


class AutoBackup:
    """Decides each round whether to back up, and keeps the figures the status screen shows."""

    def __init__(self, settings, client):
        self.settings = settings
        self.client = client  # one pooled session for every round's status call and user probe
        self.last_attempt_at = None  # monotonic time of the last backup attempt (or held round)
        self.seen_count = None  # trigger counter at the last successful status call
        self.seen_trigger = None  # last trigger at the last successful status call
        self.backed_up_user_ids = None  # ids in the last good backup; None until read (again)
        self.figures = {
            "backups_taken": 0, "good_count": 0, "unchanged_count": 0, "suspect_count": 0, "failed_count": 0,
            "last_backup_at": None, "last_backup_kind": None, "last_backup_summary": None,
            "last_good_backup_at": None, "last_suspect_at": None,
            "trigger_count": None, "last_trigger_at": None, "status_error": None,
            "restarts_seen": 0, "last_restart_seen_at": None, "wakes_sent": 0,
        }

    def read_status(self):
        """The app's backup status, or None (with the reason in the figures) when it gave none."""
        try:
            status = self.client.backup_status()
        except BackendError as exc:
            self.figures["status_error"] = str(exc)
            log.debug("backup status unavailable: %s", exc)
            return None
        self.figures["status_error"] = None
        return status

    def news_from(self, status):
        """What the status says compared with the last one seen: 'restarted', 'saved' or ''."""
        count, trigger = status["backup_triggers_count"], status.get("last_backup")
        seen_count, seen_trigger = self.seen_count, self.seen_trigger
        self.seen_count, self.seen_trigger = count, trigger
        self.figures["trigger_count"] = count
        if seen_count is None:
            return ""
        if count < seen_count:
            return "restarted"
        if count > seen_count or (trigger is not None and trigger != seen_trigger):
            self.figures["last_trigger_at"] = utc_now_iso()
            return "saved"
        return ""

    def users_vanished(self):
        """API mode: the back end lists none of the last good backup's users, so it restarted empty.

        A counter that was 0 stays 0 across a restart; this one cheap request a round sees it anyway.
        """
        if self.settings.backend_mode != "babs10":
            return False
        if self.backed_up_user_ids is None:
            good = BackupStore(self.settings).latest_good_backup()
            self.backed_up_user_ids = {u.get("id") for u in good.users} - {None} if good else set()
        if not self.backed_up_user_ids:
            return False
        try:
            present = {user["id"] for user in self.client.list_users()}
        except BackendError as exc:
            log.debug("user list unavailable: %s", exc)
            return False
        return not (self.backed_up_user_ids & present)

    def note_restart(self, before):
        """The counter went down: the back end restarted empty. Wake the restore service."""
        self.figures["restarts_seen"] += 1
        # Said once per good backup: waking the restore service every round would only repeat its check.
        self.backed_up_user_ids = set()
        self.figures["last_restart_seen_at"] = utc_now_iso()
        woke = signal_service(self.settings.data_dir, RESTORE_SERVICE, signal.SIGUSR1)
        if woke:
            self.figures["wakes_sent"] += 1
        seen = f"trigger count {before} -> {self.seen_count}" if before is not None and self.seen_count is not None \
            and self.seen_count < before else "none of the backed-up users are listed"
        return (f"back end restarted ({seen}): "
                f"{'woke the restore service' if woke else 'the restore service is not running'}")

    def backup(self, why):
        """Take one backup now and record what came of it."""
        self.last_attempt_at = time.monotonic()
        outcome = take_backup(self.settings, self.client)
        now_iso = utc_now_iso()
        summary = describe(outcome)
        self.figures["backups_taken"] += 1
        self.figures[f"{outcome.kind}_count"] += 1
        self.figures.update(last_backup_at=now_iso, last_backup_kind=outcome.kind, last_backup_summary=summary)
        if outcome.kind in ("good", "unchanged"):
            self.figures["last_good_backup_at"] = now_iso
            self.backed_up_user_ids = None
        elif outcome.kind == "suspect":
            self.figures["last_suspect_at"] = now_iso
        return {"outcome": outcome.kind, "summary": f"{summary} [{why}]", **self.figures}

    def run_once(self, context):
        seen_before = self.seen_count
        status = self.read_status()
        news = self.news_from(status) if status is not None else ""
        # A counter above 0 shows a restart by dropping; one still at 0 cannot, so then look at the users.
        if not news and not context.woken and self.seen_count == 0 and self.users_vanished():
            news = "restarted"
        restart = self.note_restart(seen_before) if news == "restarted" else ""
        if context.woken:
            return self.backup("asked for a fresh backup" + (f"; {restart}" if restart else ""))
        if restart:
            # The next scheduled backup waits a full interval, giving the restore time to act first.
            self.last_attempt_at = time.monotonic()
            return {"outcome": "restarted", "summary": f"{restart}; no backup of this state", **self.figures}
        if news == "saved":
            return self.backup("the app saved something")
        since = None if self.last_attempt_at is None else time.monotonic() - self.last_attempt_at
        if since is None or since >= self.settings.backup_interval:
            return self.backup("scheduled")
        left = self.settings.backup_interval - since
        unknown = f"; trigger status unknown: {self.figures['status_error']}" if status is None else ""
        return {"outcome": "idle", "summary": f"nothing saved since the last backup; next one in {left:.1f} s{unknown}",
                **self.figures}


def run(settings):
    """Back up on the interval and on every save until SIGTERM; return the exit code."""
    interval = min(settings.trigger_poll_interval, settings.backup_interval)
    with BackendClient(settings) as client:
        return run_service(SERVICE, LOG_NAME, settings, interval, AutoBackup(settings, client).run_once)
