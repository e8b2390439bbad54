"""The backup store: the latest good backup, its history, and reads held aside as suspect.

DESIGN.md invariants 1, 5 and 6 live here: a read judged a wipe or a large drop goes to
`auto_backups_super/suspect/` and never touches `data_backup.json` or the good history;
every file is written atomically, history first, so a kill at any instant leaves the last
good backup whole; a damaged file is reported and skipped, never silently deleted.
"""

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import re
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .atomicfile import (PRIVATE_FILE_MODE, ensure_private_dir, fsync_dir, json_bytes, remove_stale_temp_files,
                         write_atomic, write_json_atomic)
from .exceptions import BackupFileError
from .flocks import flock_within
from .retention import kept_by_policy
from .snapshot import Snapshot, parse_backup, parse_utc_time, utc_now_iso
from .urls import without_credentials
from .wipe import Judgement, judge_read, same_content

log = logging.getLogger(__name__)

LATEST_NAME = "data_backup.json"
HISTORY_FOLDER = "auto_backups_super"
SUSPECT_FOLDER = "suspect"
LOCK_NAME = ".store.lock"
STAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"
# Parsing JSON takes several times its size in memory: a larger file is refused before it is read.
# A family shop's backup is a few MB; the writer refuses to write a backup above this, so we never
# keep one we could not read back.
MAX_BACKUP_FILE_BYTES = 50 * 1024 * 1024
# DATA_DIRs whose files were checked for credentials in their recorded URL by this process.
_SCRUBBED = set()
# What this process knows of each backup file it verified: {path: (sha256 of its bytes, BackupSummary)}.
_SUMMARIES = {}
# backup-20261129T015105.123456Z-1a2b3c4d.json, with -2, -3... when that name was taken.
_OUR_NAME = re.compile(r"^(backup|suspect)-(\d{8}T\d{6}\.\d{6}Z)-([0-9a-f]{8})(?:-(\d+))?\.json$")


@dataclass
class BackupOutcome:
    """What one backup did: kind is good | unchanged | suspect | failed, with the reason and figures."""

    kind: str
    reason: str
    judgement: Judgement | None = None
    path: Path | None = None
    counts: dict | None = None
    seconds: float | None = None
    restarted: bool = False  # a failed read: the back end restarted while it was read, so a restore may be due


@dataclass
class BackupEntry:
    """One backup file as --list shows it; error is '' when the file verifies."""

    path: Path
    kind: str  # latest | good | suspect
    created_at: datetime
    size: int
    counts: dict | None
    error: str = ""
    legacy: bool = False  # a file of the earlier scripts: it verifies as far as it can, but has no checksum
    verdict: str | None = None  # a suspect's: why it was held (large_drop, wipe, foreign)

    @property
    def ok(self):
        return not self.error


@dataclass(frozen=True)
class BackupSummary:
    """What the status, the restart probe and an unchanged read need of a verified backup, without its records."""

    path: Path
    meta: dict
    counts: dict
    checksum: str
    user_ids: frozenset

    @classmethod
    def of(cls, snapshot, path):
        meta = {key: value for key, value in snapshot.meta.items() if key != "path"}
        return cls(Path(path), meta, snapshot.counts(), snapshot.checksum(),
                   frozenset(u.get("id") for u in snapshot.users) - {None})


@dataclass
class _Found:
    """The latest good backup, the file it came from and that file's bytes."""

    snapshot: Snapshot
    path: Path
    data: bytes

    def backup(self):
        """The snapshot, its meta "path" saying which file it came from."""
        self.snapshot.meta["path"] = str(self.path)
        return self.snapshot


def _name_order(path):
    """(created time, counter) from one of our file names; None for a name that is not ours."""
    match = _OUR_NAME.match(path.name)
    if match is None:
        return None
    return datetime.strptime(match[2], STAMP_FORMAT).replace(tzinfo=timezone.utc), int(match[4] or 0)


def _too_large(size):
    return f"file is {size} bytes, over the {MAX_BACKUP_FILE_BYTES} a backup file may have"


def read_backup_bytes(path):
    """A backup file's bytes; BackupFileError when missing, unreadable or over MAX_BACKUP_FILE_BYTES."""
    try:
        # O_NONBLOCK: a FIFO in its place is refused below instead of hanging the open.
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise BackupFileError("not a regular file")
            if info.st_size > MAX_BACKUP_FILE_BYTES:
                raise BackupFileError(_too_large(info.st_size))
            # Read at most one byte past the cap: a file growing meanwhile is still refused.
            data = handle.read(MAX_BACKUP_FILE_BYTES + 1)
    except FileNotFoundError:
        raise BackupFileError("file is missing") from None
    except OSError as exc:
        raise BackupFileError(f"file is unreadable: {exc.strerror}") from None
    if len(data) > MAX_BACKUP_FILE_BYTES:
        raise BackupFileError(_too_large(len(data)))
    return data


def _load(path):
    """Read and verify one backup file: (snapshot, bytes), or BackupFileError saying what is wrong."""
    data = read_backup_bytes(path)
    return parse_backup(data), data


def _remember(found):
    """Keep what the found backup's bytes verified to, so that the same bytes are never parsed again."""
    summary = BackupSummary.of(found.snapshot, found.path)
    _SUMMARIES[found.path] = (hashlib.sha256(found.data).hexdigest(), summary)
    return summary


def _remembered(path):
    """The summary of path when its bytes are the ones this process verified, else None.

    Parsing a backup takes several times its size in memory, hashing its bytes almost nothing: a
    service that looks at an unchanged backup every round reads and hashes it, and parses it only
    when a byte changed. Any change (a new backup, a damaged or edited file) is a new parse.
    """
    known = _SUMMARIES.get(path)
    if known is None:
        return None
    try:
        digest = hashlib.sha256(read_backup_bytes(path)).hexdigest()
    except BackupFileError:
        return None
    return known[1] if digest == known[0] else None


def _problem(path):
    """Why a backup file does not verify, or '' when it does."""
    try:
        _load(path)
    except BackupFileError as exc:
        return str(exc)
    return ""


def _checksum_of(path):
    """The content checksum of a backup file that verifies, else None."""
    try:
        return _load(path)[0].checksum()
    except BackupFileError:
        return None


def _stamped(snapshot):
    """The snapshot as it is written: a created_at (now, if the read carried none), its URL without credentials."""
    meta = dict(snapshot.meta)
    if parse_utc_time(meta.get("created_at")) is None:
        meta["created_at"] = utc_now_iso()
    if meta.get("backend_url"):
        meta["backend_url"] = without_credentials(meta["backend_url"])
    return dataclasses.replace(snapshot, meta=meta), parse_utc_time(meta["created_at"])


def _began_before(snapshot, latest):
    """True when this read began before the latest good backup's read ended (created_at is a read's end)."""
    ended, latest_ended = parse_utc_time(snapshot.meta.get("created_at")), parse_utc_time(latest.meta.get("created_at"))
    took = snapshot.meta.get("duration_seconds")
    if ended is None or latest_ended is None or not isinstance(took, (int, float)):
        return False
    return ended - timedelta(seconds=took) < latest_ended


def _free_path(folder, base):
    """folder/base.json, or base-2.json, base-3.json... when taken: names never collide."""
    path, counter = folder / f"{base}.json", 1
    while path.exists():
        counter += 1
        path = folder / f"{base}-{counter}.json"
    return path


def _write_new(folder, prefix, snapshot):
    """Write the snapshot under a fresh sortable name, prefix-<created>-<sha8>.json; return (path, document)."""
    snapshot, created = _stamped(snapshot)
    document = snapshot.to_document()
    data = json_bytes(document)
    if len(data) > MAX_BACKUP_FILE_BYTES:
        raise BackupFileError(f"this backup would be {len(data)} bytes, over the {MAX_BACKUP_FILE_BYTES} a backup "
                              "file may have: not written, as it could not be read back")
    path = _free_path(folder, f"{prefix}-{created.strftime(STAMP_FORMAT)}-{snapshot.checksum()[:8]}")
    write_atomic(path, data)
    return path, document


def _our_files(folder, prefix):
    """Our named files in folder with that prefix, newest first, as (path, created time)."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        order = _name_order(path)
        if order is not None and path.name.startswith(f"{prefix}-") and path.is_file():
            found.append((order, path))
    found.sort(reverse=True)
    return [(path, created) for (created, _counter), path in found]


def _visible_files(folder):
    """Every file in folder except hidden ones (temp files of writes in progress)."""
    if not folder.is_dir():
        return []
    return [path for path in folder.iterdir() if path.is_file() and not path.name.startswith(".")]


def _remove_unless_damaged(paths):
    """Delete the files that verify; leave damaged ones for the owner. Returns (removed, damaged left)."""
    removed, damaged = [], []
    for path in paths:
        if _problem(path):
            damaged.append(path)
        else:
            path.unlink()
            removed.append(path)
    if removed:
        fsync_dir(removed[0].parent)
    return removed, damaged


def _entry(path, kind):
    """Describe one backup file for --list and the status screen, verifying it."""
    size = path.stat().st_size
    try:
        snapshot, _data = _load(path)
    except BackupFileError as exc:
        snapshot, error = None, str(exc)
    else:
        error = ""
    order = _name_order(path)
    if order is not None:
        created = order[0]
    else:  # not a name of ours (a legacy or damaged file): its own time, else when it was written
        created = (snapshot and parse_utc_time(snapshot.meta.get("created_at"))) \
            or datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    meta = snapshot.meta if snapshot else {}
    return BackupEntry(path, kind, created, size, snapshot.counts() if snapshot else None, error,
                       legacy=meta.get("mode") == "legacy", verdict=meta.get("verdict"))


# A writer holds the store lock for milliseconds; a stopped one (SIGSTOP, a hung disk) must not hang a reader.
WRITE_WAIT_SECONDS = 5


class BackupStore:
    """The backup files under DATA_DIR; writers are serialised by a lock file."""

    def __init__(self, settings):
        self.settings = settings
        self.data_dir = Path(settings.data_dir)
        self.latest_path = self.data_dir / LATEST_NAME
        self.history_dir = self.data_dir / HISTORY_FOLDER
        self.suspect_dir = self.history_dir / SUSPECT_FOLDER
        self.lock_path = self.data_dir / LOCK_NAME

    # --- reading ---

    def latest_good_backup(self):
        """The latest good backup (meta "path" says which file), or None when no file verifies."""
        with self._write_finished():
            found = self._find_latest_good()
        if found is None:
            return None
        _remember(found)
        return found.backup()

    def latest_good_summary(self):
        """The latest good backup's BackupSummary, or None when no file verifies; parsed only when its bytes changed."""
        with self._write_finished():
            return self._latest_good_summary()

    def judge(self, current):
        """judge_read of current against the latest good backup: (judgement, that backup), the backup None when it
        was not parsed (current holds the content this process verified data_backup.json to hold) or is missing."""
        with self._write_finished():
            judgement, found = self._judge(current)
        return judgement, found and found.backup()

    def _judge(self, snapshot):
        """(judgement, _Found of the latest good backup or None); the file is parsed only when the content differs."""
        known = _remembered(self.latest_path)
        if known is not None and snapshot.checksum() == known.checksum:
            # The rule's first case without parsing the file again: the bytes are the ones verified before.
            return same_content(), None
        found = self._find_latest_good()
        if found is not None:
            _remember(found)
        return judge_read(snapshot, found and found.snapshot, self.settings.large_drop_fraction,
                          backend_url=self.settings.backend_url), found

    def _latest_good_summary(self):
        summary = _remembered(self.latest_path)
        if summary is not None:
            return summary
        found = self._find_latest_good()
        return _remember(found) if found is not None else None

    def _find_latest_good(self):
        """data_backup.json if it verifies, else the newest history file that does."""
        try:
            snapshot, data = _load(self.latest_path)
            return _Found(snapshot, self.latest_path, data)
        except BackupFileError as exc:
            latest_problem = str(exc)
        history = _our_files(self.history_dir, "backup")
        if not history and not self.latest_path.exists():
            return None
        for path, _created in history:
            try:
                snapshot, data = _load(path)
            except BackupFileError as exc:
                log.warning("skipping damaged history file %s: %s", path.name, exc)
                continue
            log.warning("%s is not usable (%s): using the newest good history file %s",
                        LATEST_NAME, latest_problem, path.name)
            return _Found(snapshot, path, data)
        log.warning("no good backup: %s is not usable (%s) and no history file verifies", LATEST_NAME, latest_problem)
        return None

    def list_backups(self):
        """Every backup file, data_backup.json first, then history and suspects newest first, damaged ones flagged."""
        latest = [_entry(self.latest_path, "latest")] if self.latest_path.exists() else []
        others = [_entry(path, "good") for path in _visible_files(self.history_dir)]
        others += [_entry(path, "suspect") for path in _visible_files(self.suspect_dir)]
        others.sort(key=lambda entry: entry.created_at, reverse=True)
        return latest + others

    def held_suspects(self):
        """Suspect reads newer than the latest good backup: the status screen warns about them."""
        found = self._latest_good_summary()
        since = found and parse_utc_time(found.meta.get("created_at"))
        return [_entry(path, "suspect") for path, created in _our_files(self.suspect_dir, "suspect")
                if since is None or created > since]

    # --- writing ---

    @contextmanager
    def _write_finished(self):
        """Wait for a backup being written: a restore that read a wiped host just as a read from before the wipe
        was being recorded must start from that newer backup, not the one it replaces."""
        try:
            # O_NONBLOCK: a FIFO in its place cannot hang the open.
            fd = os.open(self.lock_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            fd = None  # nothing was ever written here, or the lock file cannot be opened: nothing to wait for
        try:
            if fd is not None:
                if not flock_within(fd, WRITE_WAIT_SECONDS, shared=True):
                    log.warning("a backup has been writing for over %.0f s; reading the latest good backup anyway",
                                WRITE_WAIT_SECONDS)
            yield
        finally:
            if fd is not None:
                os.close(fd)

    @contextmanager
    def _locked(self):
        """Hold the store lock: the backup service and a manual backup may write at the same time."""
        if not self.data_dir.exists():
            ensure_private_dir(self.data_dir)
        ensure_private_dir(self.history_dir)
        ensure_private_dir(self.suspect_dir)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._remove_stale_temp_files()
            self._scrub_credentials_once()
            yield
        finally:
            os.close(fd)

    def _scrub_credentials_once(self):
        """Files written before URLs were recorded without credentials are rewritten once, atomically, without them."""
        if self.data_dir in _SCRUBBED:
            return
        paths = [self.latest_path, *_visible_files(self.history_dir), *_visible_files(self.suspect_dir)]
        for path in paths:
            try:
                document = json.loads(read_backup_bytes(path))
            except (BackupFileError, ValueError):
                continue  # a damaged file stays as it is, for the owner to see in --list
            url = document.get("backend_url") if isinstance(document, dict) else None
            if not isinstance(url, str) or without_credentials(url) == url:
                continue
            touched = path.stat()
            write_atomic(path, json_bytes({**document, "backend_url": without_credentials(url)}))
            # The mtime of data_backup.json says when its data was last verified: keep it.
            os.utime(path, ns=(touched.st_atime_ns, touched.st_mtime_ns))
            log.warning("removed the credentials from the back-end URL recorded in %s", path.name)
        _SCRUBBED.add(self.data_dir)

    def _remove_stale_temp_files(self):
        """Temp files of writes killed mid-way would pile up, one per kill: each write clears the old ones."""
        for folder in (self.data_dir, self.history_dir, self.suspect_dir):
            removed = remove_stale_temp_files(folder)
            if removed:
                log.info("removed %d temp files left by writes that were cut short: %s", len(removed),
                         ", ".join(sorted(removed)))

    def record(self, snapshot, accept_shrink=False, accept_current=False):
        """Judge a fresh read against the latest good backup and keep it as good, unchanged or suspect.

        accept_shrink promotes a large drop, accept_current a foreign back end: the owner's decisions. A wipe never.
        """
        with self._locked():
            judgement, found = self._judge(snapshot)
            counts = snapshot.counts()
            if judgement.verdict == "unchanged":
                self._mark_verified(found)
                return BackupOutcome("unchanged", judgement.reason, judgement, self.latest_path, counts)
            if judgement.verdict == "deleted" and _began_before(snapshot, found.snapshot):
                # Two backups at once (the service and manual_backup.py): what this read lacks may have been
                # added while it ran, not deleted. A read begun after the latest good one decides.
                return BackupOutcome("unchanged", "this read began before the latest good backup's read ended "
                                     "and lacks records it has: the latest good backup stays", judgement, found.path,
                                     counts)
            # A wipe is never promoted, not even when the owner accepts a shrink.
            accepted = ((accept_shrink and judgement.verdict == "large_drop")
                        or (accept_current and judgement.verdict == "foreign"))
            if judgement.good or accepted:
                path = self._write_good(snapshot, found)
                return BackupOutcome("good", judgement.reason, judgement, path, counts)
            path, reason = self._hold_suspect(snapshot, judgement)
            if (accept_shrink or accept_current) and judgement.verdict == "wipe":
                accepting = "a shrink" if accept_shrink else "the current back end"
                reason += f"; accepting {accepting} never promotes a wipe"
            return BackupOutcome("suspect", reason, judgement, path, counts)

    def _mark_verified(self, found):
        """Same content again: the mtime of data_backup.json says when it was last verified (found None: it was)."""
        if found is None or found.path == self.latest_path:
            os.utime(self.latest_path)
            return
        self._set_aside_damaged_latest()
        write_atomic(self.latest_path, found.data)
        log.warning("rewrote %s from %s", LATEST_NAME, found.path.name)

    def _write_good(self, snapshot, found):
        """History file first, then data_backup.json, then retention: a kill in between loses nothing."""
        path, document = _write_new(self.history_dir, "backup", snapshot)
        if found is None or found.path != self.latest_path:
            self._set_aside_damaged_latest()
        write_json_atomic(self.latest_path, document)
        self._prune_history(None)
        return path

    def _set_aside_damaged_latest(self):
        """Move a damaged data_backup.json into the history folder instead of writing over it."""
        if not self.latest_path.exists():
            return
        stamp = datetime.now(timezone.utc).strftime(STAMP_FORMAT)
        aside = _free_path(self.history_dir, f"damaged-{stamp}-data_backup")
        os.replace(self.latest_path, aside)
        fsync_dir(self.data_dir)
        fsync_dir(self.history_dir)
        log.warning("kept the damaged %s as %s", LATEST_NAME, aside.name)

    def _hold_suspect(self, snapshot, judgement):
        """Keep a wiped or shrunken read aside, once per distinct content; return (path, reason)."""
        held = _our_files(self.suspect_dir, "suspect")
        if held and _checksum_of(held[0][0]) == snapshot.checksum():
            # The mtime of a held suspect says when that read was last seen.
            os.utime(held[0][0])
            return held[0][0], f"{judgement.reason} (same read as held before, not written again)"
        with_verdict = dataclasses.replace(snapshot, meta={**snapshot.meta, "verdict": judgement.verdict,
                                                           "reason": judgement.reason})
        path, _document = _write_new(self.suspect_dir, "suspect", with_verdict)
        beyond = [old for old, _created in _our_files(self.suspect_dir, "suspect")[self.settings.keep_last:]]
        removed, damaged = _remove_unless_damaged(beyond)
        log.debug("suspects: removed %d beyond KEEP_LAST, left %d damaged", len(removed), len(damaged))
        return path, judgement.reason

    # --- retention ---

    def prune_history(self, now=None):
        """Apply retention to the good history now; returns the removed paths."""
        with self._locked():
            return self._prune_history(now)

    def _prune_history(self, now):
        """Keep the newest KEEP_LAST, the newest per hour and per day, and the newest good; never a damaged file."""
        settings = self.settings
        now = now or datetime.now(timezone.utc)
        history = _our_files(self.history_dir, "backup")
        keep = set()
        newest_good = next((path for path, _created in history if not _problem(path)), None)
        if newest_good is not None:
            keep.add(newest_good)
        keep |= kept_by_policy(history, settings.keep_last, settings.keep_hourly, settings.keep_daily, now)
        removed, damaged = _remove_unless_damaged([path for path, _created in history if path not in keep])
        level = logging.INFO if removed or damaged else logging.DEBUG
        log.log(level, "history: %d kept, %d removed, %d damaged left for the owner (see manual_backup.py --list)",
                len(history) - len(removed), len(removed), len(damaged))
        return removed
