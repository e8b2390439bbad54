"""Did the back end restart? Every service asks here; each rule is pure, as wipe.py's is, and says why.

A restart of an in-memory back end may have emptied it, so each sign of one wakes the restore
service, which then judges the data (wipe.py). The signs, by who sees them:
  - keep-alive: an answer after failed pings, or a slow first answer (a cold start): came_back();
  - backup service: the app's trigger counter went down (counter_went_down()), or, with the
    counter at 0 where it cannot drop, none of the last good backup's users are listed
    (users_vanished()), said once per disappearance so a restart that was not a wipe never
    blinds the next one;
  - client: user ids listed before a read and gone after it (vanished_during_read()): the API
    cannot delete users, so the back end restarted mid-read and the read is not trustworthy;
    the backup service takes such a read, or one the store judged a wipe, as a restart too, since
    a woken round looks at neither the counter nor the users first;
  - restore service: after it put the data back, or found a restart that was no wipe, it asks
    the backup service for a fresh backup, so the probe compares with the users listed now.
A wake that finds the restore service not running (it is starting) is kept and sent again
next round until delivered (PendingWake), so none is lost.
"""

import logging
import signal

from .processes import signal_service
from .services import AUTO_RESTORE

log = logging.getLogger(__name__)

RESTORE_SERVICE = AUTO_RESTORE.name
# Without a ping for this many intervals (the computer slept, say), the host may have slept too.
QUIET_INTERVALS = 2


def came_back(failures_before, latency, slow_answer_seconds, since_last_ok, last_was_slow, interval,
              restoring=False):
    """Why this health answer means the host may have restarted, or '' when it does not.

    An answer after failures is a restart. A slow answer is a cold start only when it is the first
    slow one: none came before (since_last_ok None), the last was fast, or pings stopped for
    QUIET_INTERVALS intervals; a steadily slow network would otherwise wake the restore every ping.
    While our own restore runs (restoring), a slow answer is the server hashing its PINs, never a cold start.
    """
    if failures_before:
        return f"back end answered again after {failures_before} failure{'' if failures_before == 1 else 's'}"
    if latency <= slow_answer_seconds or restoring:
        return ""
    if since_last_ok is None or not last_was_slow or since_last_ok > QUIET_INTERVALS * interval:
        return f"back end answered slowly ({latency:.2f} s, a cold start?)"
    return ""


def counter_went_down(before, now):
    """True when the app's backup-trigger counter dropped: it only ever grows while the back end lives."""
    return before is not None and now is not None and now < before


def users_vanished(backed_up_ids, listed_ids):
    """True when the back end lists none of the users of the last good backup (there were some)."""
    return bool(backed_up_ids) and not (set(backed_up_ids) & set(listed_ids))


def vanished_during_read(ids_before, ids_after):
    """User ids listed at the start of a read and gone at its end: the back end restarted meanwhile."""
    return set(ids_before) - set(ids_after)


class PendingWake:
    """A wake-up for the restore service that is kept until a running restore service received it."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.pending = ""  # why, while a wake waits to be delivered
        self.sent = 0

    def ask(self, why):
        """Wake the restore service now, or keep the wake for the next try; True when delivered."""
        self.pending = why
        return self.deliver()

    def nudge(self, why):
        """Wake the restore service now if it runs; never kept: one that starts later checks at its start anyway."""
        if not signal_service(self.data_dir, RESTORE_SERVICE, signal.SIGUSR1):
            return False
        log.debug("woke the restore service: %s", why)
        self.sent += 1
        return True

    def deliver(self):
        """Send a waiting wake; True when the restore service got it (False also when none waits)."""
        if not self.pending or not self.nudge(self.pending):
            return False
        self.pending = ""
        return True
