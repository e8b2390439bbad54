"""One backup now: read the back end, let the store judge and keep the read, and say what happened in one line."""

import logging
import time

from .client import BackendClient
from .exceptions import BackendError
from .store import BackupOutcome, BackupStore
from .wording import describe

log = logging.getLogger(__name__)


def take_backup(settings, accept_shrink=False):
    """Read the whole back end and record it; an unusable answer is a "failed" outcome that touched no file."""
    started = time.monotonic()
    try:
        with BackendClient(settings) as client:
            snapshot = client.read_snapshot()
    except BackendError as exc:
        outcome = BackupOutcome("failed", str(exc))
    else:
        try:
            outcome = BackupStore(settings).record(snapshot, accept_shrink=accept_shrink)
        except OSError as exc:
            # A full or read-only disk: every write is atomic, so the last good backup is as it was.
            outcome = BackupOutcome("failed", f"could not write to {settings.data_dir}: {exc.strerror or exc}")
    outcome.seconds = time.monotonic() - started
    level = logging.INFO if outcome.kind in ("good", "unchanged") else logging.WARNING
    log.log(level, "%s", describe(outcome))
    return outcome
