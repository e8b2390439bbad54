"""Auto-backup: every BACKUP_INTERVAL, sooner when the app reports a save, never of a back end that just restarted.

Each iteration (every TRIGGER_POLL_INTERVAL) looks at GET /api/backup/status first, then:
  - the trigger counter went down, or (API mode, counter at 0) GET /api/users holds none
    of the users of the last good backup (restart.py's rules): the back end restarted empty.
    The restore service is woken (the wake is sent again each round until one is delivered)
    and no backup is taken this round (the store would only hold it aside anyway);
  - a new trigger (something was saved), BACKUP_INTERVAL passed since the last attempt,
    or SIGUSR1 (the restore service asks for a fresh copy): a backup now;
  - otherwise nothing.
Outcomes in the state file: good | unchanged | suspect | failed (a backup was taken),
restarted (a counter reset seen, or users vanished during the read: no backup), idle (nothing
to do), taking_over (a new watcher fetches the off-site copy first, takeover.py). Each new
good backup is queued off-site and the uploader runs in its own process, never waited for;
copies left waiting are tried again once per BACKUP_INTERVAL.
"""

import dataclasses
import logging
import time

from . import restart
from .backup import take_backup
from .client import BackendClient
from .exceptions import BackendError
from .offsite_queue import Shipper
from .runner import run_service
from .services import AUTO_BACKUP
from .snapshot import utc_now_iso
from .state import BackupFigures, Iteration
from .store import BackupStore
from .takeover import Takeover
from .wording import describe, offsite_not_queued

log = logging.getLogger(__name__)

SERVICE = AUTO_BACKUP.name
LOG_NAME = AUTO_BACKUP.log_name


class AutoBackup:
    """Decides each round whether to back up, and keeps the figures the status screen shows."""

    def __init__(self, settings, client):
        self.settings = settings
        self.client = client  # one pooled session for every round's status call and user probe
        self.last_attempt_at = None  # monotonic time of the last backup attempt (or held round)
        self.seen_count = None  # trigger counter at the last successful status call
        self.seen_trigger = None  # last trigger at the last successful status call
        self.backed_up_user_ids = None  # ids in the last good backup; None until read (again)
        # The users were found gone at the last look: said once, until they are listed again.
        self.users_gone = False
        self.wake = restart.PendingWake(settings.data_dir)
        self.figures = BackupFigures()
        self.shipper = Shipper(settings)
        self.takeover = Takeover(settings)

    def read_status(self):
        """The app's backup status, or None (with the reason in the figures) when it gave none."""
        try:
            status = self.client.backup_status()
        except BackendError as exc:
            self.figures.status_error = str(exc)
            log.debug("backup status unavailable: %s", exc)
            return None
        self.figures.status_error = None
        return status

    def news_from(self, status):
        """What the status says compared with the last one seen: 'restarted', 'saved' or ''."""
        count, trigger = status["backup_triggers_count"], status.get("last_backup")
        seen_count, seen_trigger = self.seen_count, self.seen_trigger
        self.seen_count, self.seen_trigger = count, trigger
        self.figures.trigger_count = count
        if seen_count is None:
            return ""
        if restart.counter_went_down(seen_count, count):
            return "restarted"
        if count > seen_count or (trigger is not None and trigger != seen_trigger):
            self.figures.last_trigger_at = utc_now_iso()
            return "saved"
        return ""

    def users_vanished(self):
        """API mode: the back end newly lists none of the last good backup's users, so it restarted empty.

        A counter that was 0 stays 0 across a restart; this one cheap request a round sees it anyway.
        Said once per disappearance: once the users are listed again (the restore put them back, or the
        restart was no wipe), the next disappearance is seen as well.
        """
        gone = self.users_gone_now()
        news, self.users_gone = gone and not self.users_gone, gone
        return news

    def users_gone_now(self):
        """True when the back end lists none of the last good backup's users (False when it cannot tell)."""
        if self.settings.backend_mode != "babs10":
            return False
        if self.backed_up_user_ids is None:
            good = BackupStore(self.settings).latest_good_summary()
            self.backed_up_user_ids = set(good.user_ids) if good else set()
        if not self.backed_up_user_ids:
            return False
        try:
            listed = {user["id"] for user in self.client.list_users()}
        except BackendError as exc:
            log.debug("user list unavailable: %s", exc)
            return False
        return restart.users_vanished(self.backed_up_user_ids, listed)

    def note_restart(self, before, sign=""):
        """The back end restarted, maybe empty: wake the restore service (again next round if it is not running).

        sign: what a backup read itself saw of the restart, which the counter and the probe looked for before it.
        """
        self.figures.restarts_seen += 1
        by_counter = restart.counter_went_down(before, self.seen_count)
        if by_counter or sign:
            # Look at the users now, so the probe rounds that follow report only a later disappearance.
            self.users_gone = self.users_gone_now()
        self.figures.last_restart_seen_at = utc_now_iso()
        seen = sign or (f"trigger count {before} -> {self.seen_count}" if by_counter
                        else "none of the backed-up users are listed")
        why = f"back end restarted ({seen})"
        woke = self.wake.ask(why)
        self.figures.wakes_sent = self.wake.sent
        if sign:
            # The counter dropped with this same restart: take it as it is now, or the next round counts it again.
            self.take_counter_as_it_is_now()
        return f"{why}: {'woke the restore service' if woke else 'the restore service is not running'}"

    def take_counter_as_it_is_now(self):
        """Take the trigger counter as the status gives it now; the news it would bring is dropped."""
        status = self.read_status()
        if status is not None:
            self.news_from(status)

    def deliver_waiting_wake(self):
        """Send a wake an earlier round could not deliver; the note for the summary, or ''."""
        why = self.wake.pending
        if not why or not self.wake.deliver():
            return ""
        self.figures.wakes_sent = self.wake.sent
        return f"; woke the restore service at last ({why})"

    def backup(self, why):
        """Take one backup now and record what came of it."""
        self.last_attempt_at = time.monotonic()
        outcome = take_backup(self.settings, self.client)
        if outcome.restarted:
            # Not a failed backup: there was nothing whole to back up, and the restore comes first.
            noted = self.note_restart(self.seen_count, "users vanished during the read")
            return self.answer("restarted", f"no backup: {noted} [{why}]")
        now_iso = utc_now_iso()
        # Only a new good backup goes off-site: an unchanged one is already there.
        summary = describe(outcome) + (offsite_not_queued(self.shipper.ship(outcome.path))
                                       if outcome.kind == "good" else "")
        # A wiped read is a restart not seen yet unless this disappearance was already said (the next wiped
        # read is the same one).
        wiped = outcome.kind == "suspect" and outcome.judgement is not None and outcome.judgement.verdict == "wipe" \
            and not self.users_gone
        if wiped:
            # The read itself saw the restart: the counter and the probe, which looked before it, may not have.
            summary += f"; {self.note_restart(self.seen_count, 'this read was judged a wipe')}"
            self.users_gone = True
        figures = self.figures
        figures.backups_taken += 1
        setattr(figures, f"{outcome.kind}_count", getattr(figures, f"{outcome.kind}_count") + 1)
        figures.last_backup_at, figures.last_backup_kind, figures.last_backup_summary = now_iso, outcome.kind, summary
        if outcome.kind in ("good", "unchanged"):
            figures.last_good_backup_at = now_iso
            # The read just listed this backup's users: none is gone, so the next probe sees the next sleep.
            self.backed_up_user_ids, self.users_gone = None, False
        if outcome.kind == "good" and outcome.judgement is not None and outcome.judgement.verdict == "first":
            # The restore service found nothing to compare with at its start; without this it would wait out its
            # whole interval before its first check, and the status could not say PROTECTED meanwhile.
            self.wake.nudge("the first good backup is in")
            figures.wakes_sent = self.wake.sent
        elif outcome.kind == "suspect":
            figures.last_suspect_at = now_iso
        return self.answer(outcome.kind, f"{summary} [{why}]", warn=outcome.kind not in ("good", "unchanged"))

    def answer(self, outcome, summary, warn=False):
        """The run_once result: outcome, summary and a copy of the figures as they are now."""
        return Iteration(outcome, summary, dataclasses.replace(self.figures), warn=warn)

    def run_once(self, context):
        waiting = self.takeover.step(context.stopping)
        if waiting:
            return self.answer("taking_over", waiting)
        late_wake = self.deliver_waiting_wake()
        answer = self.decide(context)
        answer.summary += late_wake
        # Copies the store did not take yet (it was down) are tried again, off the loop.
        self.shipper.kick(retry_after=self.settings.backup_interval)
        return answer

    def decide(self, context):
        """This round's action: a backup, a restart noted, or nothing."""
        seen_before = self.seen_count
        if context.woken:
            # Only the restore service wakes us, right after it saw the back end hold data (its restore, or a
            # restart that was no wipe): whatever vanishes from now on is a new disappearance.
            self.users_gone = False
        status = self.read_status()
        news = self.news_from(status) if status is not None else ""
        # A counter above 0 shows a restart by dropping; one still at 0 cannot, so then look at the users.
        if not news and not context.woken and self.seen_count == 0 and self.users_vanished():
            news = "restarted"
        noted = self.note_restart(seen_before) if news == "restarted" else ""
        if context.woken:
            return self.backup("asked for a fresh backup" + (f"; {noted}" if noted else ""))
        if noted:
            # The next scheduled backup waits a full interval, giving the restore time to act first.
            self.last_attempt_at = time.monotonic()
            return self.answer("restarted", f"{noted}; no backup of this state")
        if news == "saved":
            return self.backup("the app saved something")
        since = None if self.last_attempt_at is None else time.monotonic() - self.last_attempt_at
        if since is None or since >= self.settings.backup_interval:
            return self.backup("scheduled")
        left = self.settings.backup_interval - since
        unknown = f"; trigger status unknown: {self.figures.status_error}" if status is None else ""
        return self.answer("idle", f"nothing saved since the last backup; next one in {left:.1f} s{unknown}")


def run(settings):
    """Back up on the interval and on every save until SIGTERM; return the exit code."""
    interval = min(settings.trigger_poll_interval, settings.backup_interval)
    with BackendClient(settings) as client:
        return run_service(SERVICE, LOG_NAME, settings, interval, AutoBackup(settings, client).run_once)
