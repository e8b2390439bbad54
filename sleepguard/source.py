"""Which backup a restore starts from: a file the owner names inside DATA_DIR, an off-site copy, else the newest good one."""

from datetime import datetime
from pathlib import Path

from .exceptions import BackupFileError, RestoreError
from .snapshot import parse_backup
from .store import BackupStore, read_backup_bytes
from .wording import AT_NEEDS_OFFSITE, describe_source


def parse_at(text):
    """The time --at names (ISO 8601; without a zone it is this machine's local time); RestoreError when not one."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise RestoreError(f"{text!r} is not a time: give it as 2026-12-01T13:58 or 2026-12-01 13:58:00") from None


def offsite_backup(settings, at=None):
    """The newest good off-site copy (at or before `at`) as a backup, a line saying which, and the PINs it carries."""
    from .offsite_copies import fetch_copy  # the S3 client, only in the one-shot command
    name, contents = fetch_copy(settings, parse_at(at) if at else None)
    backup = parse_backup(contents.backup)
    # Written by the restore only once it goes ahead: a dry run or a "no" leaves every file as it was.
    return backup, describe_source(backup, f"off-site copy {name}"), (contents.pins, contents.restored_pins)


def choose_backup(settings, file=None, owner_email=None, from_offsite=False, at=None):
    """The backup to restore, a line saying which, and the PINs an off-site copy carries (None for a local file).

    A file inside DATA_DIR, an off-site copy, else the latest good one.
    """
    if at is not None and not from_offsite:
        raise RestoreError(AT_NEEDS_OFFSITE)
    if from_offsite:
        if file is not None or owner_email is not None:
            raise RestoreError("restore either from a file or from an off-site copy, not both")
        return offsite_backup(settings, at)
    if file is None:
        if owner_email is not None:
            raise RestoreError("an owner e-mail applies only to a legacy file: name the legacy file to restore too")
        backup = BackupStore(settings).latest_good_backup()
        if backup is None:
            raise BackupFileError(f"no good backup in {settings.data_dir}: nothing to restore from")
        return backup, describe_source(backup, backup.meta["path"]), None
    path, data_dir = Path(file).expanduser().resolve(), settings.data_dir.expanduser().resolve()
    if not path.is_relative_to(data_dir):
        raise RestoreError(f"{file} is outside DATA_DIR ({data_dir}): copy it into DATA_DIR first")
    try:
        backup = parse_backup(read_backup_bytes(path), owner_email=owner_email)
    except BackupFileError as exc:
        raise BackupFileError(f"{path}: {exc}") from None
    return backup, describe_source(backup, path), None
