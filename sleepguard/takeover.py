"""A new watcher takes over: on an empty DATA_DIR, the latest good off-site copy becomes the local good backup first.

With OFFSITE_* and the identity file set and no backup in DATA_DIR, a service runs the
takeover before its first judgement: `python3 -m sleepguard.takeover`, a short-lived
process (the S3 client never lives in a service), fetches and verifies the newest good
copy and records it as the local good backup, with the owner's PIN file and
restored_pins.json it carries (0600, never over existing ones). The backup keeps its back
end URL and its records, hence its watermark, so wipe.py's rules apply unchanged: an empty
back end at that URL is restored, anything else is foreign. Until the takeover is settled
the service judges nothing: a fresh empty read must never become the "first" good backup
and be copied over the one the remote holds.
"""

import logging
import os
import subprocess
import sys
import tempfile
import time

from .atomicfile import ensure_private_dir
from .exceptions import OffsiteError, SleepguardError
from .flocks import flock_within
from .logsetup import setup_command_logging
from .offsite import is_configured
from .pins import write_carried_pins
from .settings import PROJECT_DIR, load_settings
from .snapshot import parse_backup
from .store import BackupStore

log = logging.getLogger(__name__)

LOCK_NAME = ".takeover.lock"
# Exit codes of the takeover process: settled (taken over, or nothing to take over), or try again later.
SETTLED, RETRY = 0, 1
# The services start at once: the others wait this long for the first one's takeover before trying their own.
LOCK_WAIT_SECONDS = 120
POLL_SECONDS = 0.05


def needed(settings):
    """True when this watcher should take over: off-site copies and the identity file set, and no backup here."""
    if not (is_configured(settings) and settings.offsite_identity_file):
        return False
    store = BackupStore(settings)
    return not store.latest_path.exists() and not any(store.history_dir.glob("backup-*.json"))


def take_over(settings):
    """Fetch the latest good copy and record it as the local good backup; a line saying what came of it.

    Raises OffsiteError when the store cannot be read now (the caller tries again later).
    """
    from .offsite_copies import fetch_latest, remote_names  # the S3 client, in this short-lived process only
    data_dir = ensure_private_dir(settings.data_dir)
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if not flock_within(fd, LOCK_WAIT_SECONDS):
            raise OffsiteError("another takeover has held the lock for too long")
        if not needed(settings):
            return "a backup is already here: nothing to take over"
        if not remote_names(settings):
            return f"no off-site copy under {settings.offsite_url} yet: starting afresh"
        backup, pins, restored, backend_url, _watermark = fetch_latest(settings)
        outcome = BackupStore(settings).record(parse_backup(backup))
        if outcome.kind != "good":
            raise OffsiteError(f"the fetched copy was not recorded: {outcome.reason}")
        write_carried_pins(settings, (pins, restored))
        counts = outcome.counts
        return (f"took over from the off-site copy: {counts['users']} users, {counts['customers']} customers "
                f"of {backend_url or 'the back end'} are the local good backup {outcome.path.name}")
    finally:
        os.close(fd)


class Takeover:
    """A service's gate before its first judgement: run the takeover process until it is settled."""

    def __init__(self, settings, environ=None):
        self.settings = settings
        self.environ = environ
        self.settled = not needed(settings)
        self.next_try = 0.0

    def step(self, stopping=None):
        """'' once settled (or never needed), else the line saying why the service does not judge yet.

        stopping: the service's stop event; set, the takeover process is ended and tried again at the next start.
        """
        if self.settled:
            return ""
        if time.monotonic() < self.next_try:
            return "waiting to take over from the off-site copies before the first judgement"
        code, said = self._run(stopping)
        if code == SETTLED:
            self.settled = True
            log.info("%s", said)
            return ""
        self.next_try = time.monotonic() + max(self.settings.backup_interval, 1.0)
        log.warning("not taking over yet, judging nothing until then: %s", said)
        return f"not judging yet: the takeover from the off-site copies failed ({said}); trying again"

    def _run(self, stopping):
        """Run the takeover process to its end, its deadline or the service's stop: (exit code, its last line)."""
        settings = self.settings
        env = dict(os.environ if self.environ is None else self.environ)
        env["DATA_DIR"] = str(settings.data_dir)
        # Bounded: a few store calls, each within the client's timeouts and retries, and the lock wait.
        deadline = LOCK_WAIT_SECONDS + 8 * (settings.connect_timeout + settings.read_timeout) * (settings.retries + 1)
        # Its few lines of log go to a file, not a pipe: nothing can fill up and stall it.
        with tempfile.TemporaryFile("w+") as said:
            process = subprocess.Popen([sys.executable, "-m", "sleepguard.takeover"], cwd=PROJECT_DIR, env=env,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=said)
            ends = time.monotonic() + deadline
            while process.poll() is None and time.monotonic() < ends and not (stopping and stopping.is_set()):
                # Polled, not waited on: the signal handler sets the event in this very thread.
                time.sleep(POLL_SECONDS)
            if process.poll() is None:
                process.kill()
                process.wait()
                return RETRY, "stopping" if stopping and stopping.is_set() else f"the takeover took over {deadline:.0f} s"
            said.seek(0)
            # The process ends with one line: what it did, or why it could not.
            lines = said.read().strip().splitlines()
        return process.returncode, lines[-1] if lines else "the takeover ended without a word"


def main():
    """python3 -m sleepguard.takeover: take over once; exit 0 when settled, 1 to be tried again."""
    setup_command_logging("INFO")
    try:
        settings = load_settings()
        line = take_over(settings)
    except (SleepguardError, OSError) as exc:
        log.error("%s", exc)
        return RETRY
    log.info("%s", line)
    return SETTLED


if __name__ == "__main__":
    sys.exit(main())
