"""Which backup a restore starts from: a file the owner names inside DATA_DIR, else the newest good one."""

from pathlib import Path

from .exceptions import BackupFileError, RestoreError
from .snapshot import parse_backup
from .store import BackupStore, read_backup_bytes
from .wording import describe_source


def choose_backup(settings, file=None, owner_email=None):
    """The backup to restore and a line saying which: a file inside DATA_DIR, else the latest good one."""
    if file is None:
        if owner_email is not None:
            raise RestoreError("an owner e-mail applies only to a legacy file: name the legacy file to restore too")
        backup = BackupStore(settings).latest_good_backup()
        if backup is None:
            raise BackupFileError(f"no good backup in {settings.data_dir}: nothing to restore from")
        return backup, describe_source(backup, backup.meta["path"])
    path, data_dir = Path(file).expanduser().resolve(), settings.data_dir.expanduser().resolve()
    if not path.is_relative_to(data_dir):
        raise RestoreError(f"{file} is outside DATA_DIR ({data_dir}): copy it into DATA_DIR first")
    try:
        backup = parse_backup(read_backup_bytes(path), owner_email=owner_email)
    except BackupFileError as exc:
        raise BackupFileError(f"{path}: {exc}") from None
    return backup, describe_source(backup, path)
