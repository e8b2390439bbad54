"""Off-site copies, the remote side: upload the queue in order, prune by the local rule, check and fetch copies.

Each call is bounded (the store's timeouts and retries) and stops at the first failure,
leaving the queue as it was: the remote never touches a local backup, and copies wait
in order until the store takes them. Meant for short-lived processes (the uploader and
the commands), since it loads the S3 client.
"""

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .atomicfile import PRIVATE_FILE_MODE, ensure_private_dir
from .exceptions import BackupFileError, OffsiteError, SettingsError
from .flocks import try_flock
from .offsite import (MAX_POINTER_BYTES, POINTER_NAME, chosen_copies, matches_pointer, name_time, parse_plaintext,
                      parse_pointer, pointer_bytes, remote_kept, require_offsite)
from .offsite_crypto import check_recipient, decrypt, load_identity
from .offsite_queue import queued_copies, remove_queued, write_record
from .offsite_store import RemoteStore
from .snapshot import parse_backup
from .store import MAX_BACKUP_FILE_BYTES

log = logging.getLogger(__name__)

LOCK_NAME = ".offsite.lock"
# A copy holds the backup as JSON text plus the PIN files: escaping can grow it, never past twice.
MAX_COPY_BYTES = 2 * MAX_BACKUP_FILE_BYTES + 1024 * 1024


@dataclass
class DrainReport:
    """What one uploader run did: the names uploaded in order, how many still wait, and what went wrong."""

    uploaded: list = field(default_factory=list)
    waiting: int = 0
    problem: str = ""
    busy: bool = False


def _identity_if_set(settings):
    """The identity when OFFSITE_IDENTITY_FILE is set (checked against OFFSITE_RECIPIENT), else None."""
    if not settings.offsite_identity_file:
        return None
    identity = load_identity(settings)
    check_recipient(settings, identity)
    return identity


def _locked(settings):
    """The uploader's lock fd when we got it, else None: one drain at a time per DATA_DIR."""
    if not Path(settings.data_dir).is_dir():
        ensure_private_dir(settings.data_dir)
    fd = os.open(Path(settings.data_dir) / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    if try_flock(fd):
        return fd
    os.close(fd)
    return None


def drain_queue(settings, environ=None):
    """Upload each queued copy in order (write-once name, then the pointer), removing it once stored."""
    fd = _locked(settings)
    if fd is None:
        return DrainReport(waiting=len(queued_copies(settings)), busy=True)
    report = DrainReport()
    try:
        try:
            require_offsite(settings)
            _identity_if_set(settings)
            remote = RemoteStore(settings, environ)
            # Listing first: wrong credentials or a missing bucket show at once, even with nothing to upload.
            remote.names()
            for path in queued_copies(settings):
                data = path.read_bytes()
                remote.put(path.name, data)
                remote.put(POINTER_NAME, pointer_bytes(path.name, data))
                remove_queued(path)
                report.uploaded.append(path.name)
                write_record(settings, uploaded=path.name)
                log.info("off-site copy %s uploaded", path.name)
        except (OffsiteError, SettingsError) as exc:
            report.problem = str(exc)
        except OSError as exc:
            report.problem = f"the queued copies in {settings.data_dir} cannot be read or updated: " \
                             f"{exc.strerror or exc}"
        report.waiting = len(queued_copies(settings))
        try:
            write_record(settings, problem=report.problem)
        except OSError as exc:
            log.warning("could not record the upload's outcome in %s: %s", settings.data_dir, exc.strerror or exc)
        if report.problem:
            log.warning("off-site upload stopped, %d copies wait in order: %s", report.waiting, report.problem)
        return report
    finally:
        os.close(fd)


def _pointed(remote):
    """(name, sha256) the pointer names, or None when there is none or it is not ours."""
    data = remote.get(POINTER_NAME, MAX_POINTER_BYTES)
    if data is None:
        return None
    try:
        return parse_pointer(data)
    except OffsiteError as exc:
        log.warning("%s", exc)
        return None


def apply_remote_retention(settings, now=None, environ=None):
    """Delete our copies the local retention rule would not keep, judged by the time in each name; returns them."""
    require_offsite(settings)
    remote = RemoteStore(settings, environ)
    names = remote.names()
    pointed = _pointed(remote)
    keep = remote_kept(names, settings, now or datetime.now(timezone.utc), pointed and pointed[0])
    removed = []
    for name in chosen_copies(names):
        if name not in keep:
            remote.delete(name)
            removed.append(name)
    log.log(logging.INFO if removed else logging.DEBUG, "off-site: %d copies kept, %d removed by retention",
            len(chosen_copies(names)) - len(removed), len(removed))
    return removed


def _open_copy(remote, identity, name, sha256=None):
    """Download, decrypt and verify one copy: (CopyContents, snapshot); OffsiteError saying what is wrong."""
    data = remote.get(name, MAX_COPY_BYTES)
    if data is None:
        raise OffsiteError(f"{name} is not in the store")
    if sha256 is not None and not matches_pointer(data, sha256):
        raise OffsiteError(f"{name} is not the object the pointer names (partial or replaced)")
    contents = parse_plaintext(decrypt(data, identity), name_time(name))
    try:
        snapshot = parse_backup(contents.backup)
    except BackupFileError as exc:
        raise OffsiteError(f"the backup inside {name} does not verify: {exc}") from None
    return contents, snapshot


def _reader(settings, environ):
    """(identity, store) for reading copies; the identity must be set, 0600, and match OFFSITE_RECIPIENT if set."""
    if not settings.offsite_url:
        require_offsite(settings)
    identity = load_identity(settings)
    if settings.offsite_recipient:
        check_recipient(settings, identity)
    return identity, RemoteStore(settings, environ)


def check_remote(settings, environ=None):
    """Every copy of ours, newest first, as (name, ok, why): downloaded, decrypted and its checksum verified."""
    identity, remote = _reader(settings, environ)
    names = remote.names()
    pointed = _pointed(remote)
    results = []
    if pointed and pointed[0] not in names:
        results.append((POINTER_NAME, False, f"names {pointed[0]}, which is not in the store"))
    for name in chosen_copies(names):
        try:
            _contents, snapshot = _open_copy(remote, identity, name)
        except OffsiteError as exc:
            results.append((name, False, str(exc)))
            continue
        counts = snapshot.counts()
        latest = " (latest)" if pointed and pointed[0] == name else ""
        results.append((name, True, f"checksum ok: {counts['users']} users, {counts['customers']} customers, "
                                    f"{counts['orders']} orders{latest}"))
    return results


def remote_names(settings, environ=None):
    """Our copy names in the store, newest first: empty when the store holds no copy of ours (a first watcher)."""
    require_offsite(settings)
    return chosen_copies(RemoteStore(settings, environ).names())


def fetch_copy(settings, at=None, environ=None):
    """(name, CopyContents) of the newest good copy (taken at or before `at`), downloaded, decrypted and verified."""
    identity, remote = _reader(settings, environ)
    candidates = []
    pointed = _pointed(remote) if at is None else None
    if pointed is not None:
        candidates.append(pointed)
    candidates += [(name, None) for name in chosen_copies(remote.names(), at) if not pointed or name != pointed[0]]
    for name, sha256 in candidates:
        try:
            contents, _snapshot = _open_copy(remote, identity, name, sha256)
        except OffsiteError as exc:
            log.warning("skipping off-site copy %s: %s", name, exc)
            continue
        log.info("fetched off-site copy %s", name)
        return name, contents
    when = f" taken at or before {at.isoformat()}" if at is not None else ""
    raise OffsiteError(f"no good off-site copy{when} under {settings.offsite_url}")


def fetch_latest(settings, at=None, environ=None):
    """(backup bytes, pins, restored_pins, backend_url, watermark) of the newest good copy (at or before `at`)."""
    _name, contents = fetch_copy(settings, at, environ)
    return contents.backup, contents.pins, contents.restored_pins, contents.backend_url, contents.watermark
