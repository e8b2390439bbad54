"""Sleepguard's own restore, known to every process: one at a time (a lock), and how far it got (a progress file).

While a restore runs it holds an advisory lock on the DATA_DIR folder itself (no lock file is
left behind; nothing else locks the folder) and keeps a private progress file {"pid",
"started_at", "users_done", "users_total"} in it, rewritten atomically as each user is done and
removed at the end. The lock, not the file, says a restore runs: the
kernel drops it when its process dies, so a progress file left by a crash never blocks anyone.
The keep-alive reads it to know a slow answer is the server hashing our PINs, not a cold start;
the restore service skips its check meanwhile; the status screen shows the figures.
"""

import json
import logging
import os

from .atomicfile import ensure_private_dir, write_json_atomic
from .exceptions import RestoreRunning
from .flocks import flock_within, try_flock
from .services import restore_progress_path
from .snapshot import utc_now_iso

log = logging.getLogger(__name__)

# Others look with a shared lock for an instant: the restore waits that long, never for a real restore.
LOOK_SECONDS = 0.2


def _open_folder(data_dir):
    # O_CLOEXEC: a process this one starts must not go on holding the lock after it ends.
    return os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _read_progress(data_dir):
    """The progress file's figures, or {} when it is missing or unreadable (a restore only starting)."""
    try:
        progress = json.loads(restore_progress_path(data_dir).read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.debug("restore progress file unreadable: %s", exc)
        return {}
    return progress if isinstance(progress, dict) else {}


def _lock_held(data_dir):
    """True when some restore holds the lock (this process's own included: flock locks belong to an open file)."""
    try:
        fd = _open_folder(data_dir)
    except FileNotFoundError:
        return False
    try:
        return not try_flock(fd, shared=True)
    finally:
        os.close(fd)  # closing drops the shared lock taken to look


def running_restore(data_dir):
    """{"running": True, "users_done", "users_total", "pid", "started_at"} of the restore running now, else None."""
    if not _lock_held(data_dir):
        return None
    progress = _read_progress(data_dir)
    return {"running": True, "users_done": progress.get("users_done", 0), "users_total": progress.get("users_total"),
            "pid": progress.get("pid"), "started_at": progress.get("started_at")}


def refuse_if_running(data_dir):
    """Raise RestoreRunning when a restore of this DATA_DIR runs: a second one beside it would race it."""
    running = running_restore(data_dir)
    if running is not None:
        raise RestoreRunning(f"a restore is already running (PID {running['pid'] or '?'}): wait for it to end",
                             pid=running["pid"])


class RestoreLock:
    """Held for the whole of one restore: the lock, and the progress file others read (users done of total)."""

    def __init__(self, data_dir, users_total):
        self.data_dir = data_dir
        self.users_total = users_total
        self.started_at = None
        self._fd = None

    def __enter__(self):
        ensure_private_dir(self.data_dir)
        fd = _open_folder(self.data_dir)
        if not flock_within(fd, LOOK_SECONDS):
            os.close(fd)
            refuse_if_running(self.data_dir)
            raise RestoreRunning("a restore is already running: wait for it to end")  # it ended just now
        self._fd, self.started_at = fd, utc_now_iso()
        try:
            self.advance(0)
        except OSError:
            self._release()
            raise
        return self

    def advance(self, users_done):
        """Say how many of the users are done now (atomic, 0600)."""
        write_json_atomic(restore_progress_path(self.data_dir),
                          {"pid": os.getpid(), "started_at": self.started_at, "users_done": users_done,
                           "users_total": self.users_total})

    def _release(self):
        try:
            restore_progress_path(self.data_dir).unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing the folder's descriptor drops the lock
            self._fd = None

    def __exit__(self, *exc_info):
        self._release()
