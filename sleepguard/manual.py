"""What manual_backup.py does, by its flags: one backup now (its off-site copy queued), the list, the off-site check, a key.

Each returns (text to print, exit code), so the command stays a thin entry point.
"""

import logging
from pathlib import Path

from .backup import take_backup
from .client import BackendClient
from .offsite_queue import Shipper
from .store import BackupStore
from .takeover import needed, take_over
from .wording import describe, describe_new_identity, describe_offsite_check, format_backup_list, offsite_not_queued

log = logging.getLogger(__name__)

DEFAULT_IDENTITY_NAME = "offsite_identity.txt"


def backup_now(settings, accept_shrink=False, accept_current=False):
    """One backup; a new good one is queued off-site and the uploader started, not waited for. Exit 0 good/unchanged.

    On a new machine the off-site copy is taken over first, as the services do: an empty read is never the first.
    """
    if needed(settings):
        log.info("%s", take_over(settings))
    with BackendClient(settings) as client:
        outcome = take_backup(settings, client, accept_shrink=accept_shrink, accept_current=accept_current)
    note = offsite_not_queued(Shipper(settings).ship(outcome.path)) if outcome.kind == "good" else ""
    return describe(outcome) + note, 0 if outcome.kind in ("good", "unchanged") else 1


def check_offsite(settings):
    """Download, decrypt and verify every remote copy; exit 1 when none is good."""
    from .offsite_copies import check_remote  # the S3 client, only in this one-shot command
    results = check_remote(settings)
    return describe_offsite_check(results), 0 if any(ok for _name, ok, _why in results) else 1


def new_identity(settings, path=""):
    """Write a new identity file (path, else OFFSITE_IDENTITY_FILE, else DATA_DIR's) and say what to do with it."""
    from .offsite_crypto import keygen
    path = Path(path or settings.offsite_identity_file or Path(settings.data_dir) / DEFAULT_IDENTITY_NAME).expanduser()
    return describe_new_identity(path, keygen(path)), 0


def run(settings, list_only=False, accept_shrink=False, accept_current=False, offsite_check=False,
        offsite_keygen=None):
    """The one job the flags ask for: (text, exit code)."""
    if list_only:
        return format_backup_list(BackupStore(settings).list_backups()), 0
    if offsite_keygen is not None:
        return new_identity(settings, offsite_keygen)
    if offsite_check:
        return check_offsite(settings)
    return backup_now(settings, accept_shrink, accept_current)
