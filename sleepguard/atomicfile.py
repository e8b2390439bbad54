"""Atomic, private file writes: a crash at any instant leaves the old file or the new one."""

import json
import os
import re
import stat
import tempfile
import time
from pathlib import Path

from .exceptions import SettingsError

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
# write_atomic's temp files: .<target name>.<mkstemp's 8 random characters>.tmp
TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
# No write of ours takes this long: an older temp file is the leftover of a write that was killed.
STALE_TEMP_SECONDS = 60


def refuse_open_folder(path, name="folder"):
    """Raise SettingsError when group or others may write into path: they could swap our temp files there."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    open_to = [who for who, bit in (("its group", stat.S_IWGRP), ("others", stat.S_IWOTH)) if mode & bit]
    if open_to:
        raise SettingsError(f"{name} {path} is writable by {' and '.join(open_to)} (mode {mode:04o}), who could "
                            f"replace the files sleepguard writes there: run chmod go-w {path}, or choose another")


def ensure_private_dir(path):
    """Create the folder (and parents) 0700 if missing; an existing one keeps its mode unless others may write it.

    An existing folder is the owner's (the checkout, a shared parent): chmodding it would surprise them.
    Raises SettingsError when group or others may write into it, OSError when it cannot be created.
    """
    path = Path(path)
    # Parents we create are private too (mkdir's parents=True would follow the umask): a world-writable
    # parent would let anyone move the folder away and put another in its place.
    for missing in reversed([folder for folder in (path, *path.parents) if not folder.exists()]):
        try:
            missing.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            # Another process made it meanwhile: it is checked below like any existing folder.
            continue
        os.chmod(missing, PRIVATE_DIR_MODE)
    refuse_open_folder(path)
    return path


def fsync_dir(path):
    """Flush a folder's entries so a rename inside it survives a power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path, data):
    """Write bytes to path via a temp file in the same folder, fsync, rename, fsync the folder."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def remove_stale_temp_files(folder, older_than=STALE_TEMP_SECONDS):
    """Delete the temp files of writes killed mid-way (older than older_than seconds), so they do not pile up."""
    removed = []
    cutoff = time.time() - older_than
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not TEMP_NAME.match(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                removed.append(entry.name)
        except OSError:
            # Best effort: a leftover that cannot go now (gone already, a read-only disk) is tried again next time.
            continue
    return removed


def json_bytes(obj):
    """obj as the pretty UTF-8 JSON bytes every JSON file of ours holds."""
    return (json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")


def write_json_atomic(path, obj):
    """Write obj as pretty UTF-8 JSON, atomically."""
    write_atomic(path, json_bytes(obj))
