"""Off-site copies, the local side: the private queue of encrypted copies waiting, and what the uploader last did.

A new good backup is encrypted at once (age needs only the public key) and waits in
DATA_DIR/offsite_queue/ under the very name its object will have, so the order is kept,
nothing readable waits on disk, and a retry after a kill rewrites the same object. The
uploader (a short-lived process: python3 -m sleepguard.offsite_uploader) removes a copy
only once the store holds it. Nothing here imports the S3 client: the services stay light.
"""

import json
import logging
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from .atomicfile import ensure_private_dir, fsync_dir, write_atomic, write_json_atomic
from .exceptions import BackupFileError, OffsiteError, PinFileError, SettingsError
from .offsite import copy_name, copy_plaintext, is_configured, iso_time, name_time, new_copy_id, require_offsite
from .offsite_crypto import check_recipient, encrypt, load_identity, recipient_fingerprint
from .pins import load_pins_file, read_restored_pins
from .settings import PROJECT_DIR
from .snapshot import parse_backup, parse_utc_time, utc_now_iso
from .store import read_backup_bytes

log = logging.getLogger(__name__)

QUEUE_FOLDER = "offsite_queue"
RECORD_NAME = "offsite_uploader.state.json"
LOG_NAME = "offsite_uploader.log"


def queue_dir(settings):
    """The private folder where encrypted copies wait for the uploader."""
    return Path(settings.data_dir) / QUEUE_FOLDER


def record_path(settings):
    """The uploader's record of its last run, read by the status."""
    return Path(settings.data_dir) / RECORD_NAME


def _readable_pins(read, what):
    """PINs to carry along, or None (with a warning) when the file is unsafe: the copy still goes out."""
    try:
        return read()
    except PinFileError as exc:
        log.warning("off-site copy carries no %s: %s", what, exc)
        return None


def queue_copy(settings, backup_path):
    """Encrypt a new good backup with its back end, watermark and PIN files, and queue it; returns the queued path."""
    require_offsite(settings)
    try:
        data = read_backup_bytes(backup_path)
        snapshot = parse_backup(data)
    except BackupFileError as exc:
        raise OffsiteError(f"{Path(backup_path).name} cannot be copied off-site: {exc}") from None
    backup_time = parse_utc_time(snapshot.meta.get("created_at"))
    if snapshot.meta.get("mode") == "legacy" or backup_time is None:
        raise OffsiteError(f"{Path(backup_path).name} is not a sleepguard backup with a time: not copied off-site")
    pins = _readable_pins(lambda: load_pins_file(settings.pins_file), "owner's PIN file")
    restored = _readable_pins(lambda: read_restored_pins(settings.data_dir), "restored PIN file") or {}
    sealed = encrypt(copy_plaintext(data, snapshot, pins, restored), settings.offsite_recipient)
    try:
        path = ensure_private_dir(queue_dir(settings)) / copy_name(backup_time, new_copy_id())
        write_atomic(path, sealed)
    except OSError as exc:
        # write_atomic leaves no partial file: the copy is simply not queued, and the local backup is untouched.
        raise OffsiteError(f"the off-site copy of {Path(backup_path).name} could not be queued: "
                           f"{exc.strerror or exc}") from None
    log.info("off-site copy of %s queued as %s", Path(backup_path).name, path.name)
    return path


def queued_copies(settings):
    """The copies waiting, oldest backup first (temp files of writes in progress are not copies)."""
    folder = queue_dir(settings)
    if not folder.is_dir():
        return []
    waiting = [path for path in folder.iterdir() if name_time(path.name) is not None and path.is_file()]
    return sorted(waiting, key=lambda path: (name_time(path.name), path.name))


def remove_queued(path):
    """Forget a copy the store now holds."""
    path.unlink(missing_ok=True)
    fsync_dir(path.parent)


# --- what the uploader last did ---

def read_record(settings):
    """The uploader's last record ({} before its first run or when unreadable)."""
    try:
        record = json.loads(record_path(settings).read_bytes())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def write_record(settings, uploaded=None, problem=""):
    """Record one uploader run: the newest copy it stored (if any) and what went wrong (or '')."""
    record = read_record(settings)
    now = utc_now_iso()
    if uploaded:
        record.update(last_copy=uploaded, last_copy_time=iso_time(name_time(uploaded)), uploaded_at=now)
    if problem and not record.get("problem"):
        record["problem_since"] = now
    if not problem:
        record.pop("problem_since", None)
    record.update(problem=problem, checked_at=now)
    if not Path(settings.data_dir).is_dir():
        ensure_private_dir(settings.data_dir)
    write_json_atomic(record_path(settings), record)


def _local_clock(text):
    """HH:MM in the machine's zone, or the date too when not today, for the status line."""
    moment = parse_utc_time(text)
    if moment is None:
        return "never"
    local = moment.astimezone()
    today = datetime.now(timezone.utc).astimezone().date()
    return local.strftime("%H:%M" if local.date() == today else "%Y-%m-%d %H:%M")


def recipient_problem(settings):
    """Why OFFSITE_RECIPIENT does not fit the identity file, when one is set ('' when it fits or none is set)."""
    if not settings.offsite_identity_file or not settings.offsite_recipient:
        return ""
    try:
        check_recipient(settings, load_identity(settings))
    except OffsiteError as exc:
        return str(exc)
    return ""


def offsite_status(settings):
    """The off-site part of the status, read from local files only (no network, no S3 client)."""
    if not is_configured(settings):
        return {"configured": False, "ok": True, "problem": "", "waiting": 0, "text": "off-site: not configured"}
    try:
        require_offsite(settings)
        problem = ""
    except SettingsError as exc:  # said on the status screen instead of stopping it
        problem = str(exc)
    record = read_record(settings)
    problem = problem or recipient_problem(settings) or record.get("problem", "")
    waiting = len(queued_copies(settings))
    behind = waiting > settings.offsite_max_behind
    copy_word = "copy" if waiting == 1 else "copies"
    text = f"off-site: last copy {_local_clock(record.get('last_copy_time'))}, {waiting} waiting"
    if problem:
        text = f"off-site: NOT WORKING ({problem}); {waiting} {copy_word} waiting"
    elif behind:
        text += f" (more than OFFSITE_MAX_BEHIND={settings.offsite_max_behind})"
    return {"configured": True, "ok": not problem and not behind, "problem": problem, "behind": behind,
            "waiting": waiting, "max_behind": settings.offsite_max_behind, "last_copy": record.get("last_copy"), "last_copy_time": record.get("last_copy_time"),
            "uploaded_at": record.get("uploaded_at"), "problem_since": record.get("problem_since"),
            "checked_at": record.get("checked_at"),
            "recipient_fingerprint": recipient_fingerprint(settings.offsite_recipient), "text": text}


def start_uploader(settings, environ=None):
    """Start the uploader detached (it drains the queue and exits); returns the Popen for the caller to reap.

    Secrets reach it through its environment, never its command line; one runs at a time (it takes a lock).
    """
    env = dict(os.environ if environ is None else environ)
    env["DATA_DIR"] = str(settings.data_dir)
    # Only a crash's traceback lands here: the uploader logs to this file itself.
    log_file = open(os.open(Path(settings.data_dir) / LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "sleepguard.offsite_uploader"], cwd=PROJECT_DIR, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file,
                                start_new_session=True, close_fds=True)
    finally:
        log_file.close()


class Shipper:
    """A loop's off-site side: queue each new good backup, keep one uploader running off the loop, never wait."""

    def __init__(self, settings, environ=None):
        self.settings = settings
        self.environ = environ
        self.uploader = None  # the uploader this process started, until reaped
        self.last_start = None  # monotonic time it was started
        if is_configured(settings):
            # Checked at start: copies encrypted to a key the identity file does not open could never be read.
            problem = recipient_problem(settings)
            if problem:
                log.warning("off-site: %s", problem)

    def reap(self):
        """Read a finished uploader's exit (no zombie stays); True when none of ours runs."""
        if self.uploader is not None and self.uploader.poll() is not None:
            log.debug("off-site uploader ended with exit code %s", self.uploader.returncode)
            self.uploader = None
        return self.uploader is None

    def kick(self, retry_after=0.0):
        """Start the uploader when copies wait, none of ours runs, and retry_after seconds passed since the last."""
        if not is_configured(self.settings) or not self.reap():
            return False
        if self.last_start is not None and time.monotonic() - self.last_start < retry_after:
            return False
        if not queued_copies(self.settings):
            return False
        try:
            self.uploader = start_uploader(self.settings, self.environ)
        except OSError as exc:
            log.warning("could not start the off-site uploader: %s", exc.strerror or exc)
            return False
        self.last_start = time.monotonic()
        return True

    def ship(self, backup_path):
        """Queue the copy of a new good backup and start the uploader; '' or a problem for the round's summary."""
        if not is_configured(self.settings):
            return ""
        try:
            queue_copy(self.settings, backup_path)
        except (OffsiteError, SettingsError) as exc:
            log.warning("off-site copy not queued: %s", exc)
            return str(exc)
        self.kick()
        return ""
