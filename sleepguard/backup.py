"""One backup now: read the back end, let the store judge and keep the read, and say what happened in one line."""

import time

from .exceptions import BackendError, RestartedDuringRead
from .store import BackupOutcome, BackupStore


def take_backup(settings, client, accept_shrink=False, accept_current=False):
    """Read the whole back end over client and record it; an unusable answer is a "failed" outcome that touched no file.

    It returns the outcome and logs nothing of it: the caller says it once (describe(outcome)).
    """
    started = time.monotonic()
    try:
        snapshot = client.read_snapshot()
    except BackendError as exc:
        outcome = BackupOutcome("failed", str(exc), restarted=isinstance(exc, RestartedDuringRead))
    else:
        try:
            outcome = BackupStore(settings).record(snapshot, accept_shrink=accept_shrink, accept_current=accept_current)
        except OSError as exc:
            # A full or read-only disk: every write is atomic, so the last good backup is as it was.
            outcome = BackupOutcome("failed", f"could not write to {settings.data_dir}: {exc.strerror or exc}")
    outcome.seconds = time.monotonic() - started
    return outcome
