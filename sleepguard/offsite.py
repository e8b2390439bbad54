"""Off-site copies, the rules (pure): where they go, how they are named, what one holds, which ones are kept.

A copy is one age-encrypted object per new good backup, named by the backup's time and an
id chosen once when it was queued (backup-20261201T135800.123456Z-<16 hex>.age), so a retry
after a kill rewrites the same object. A small pointer (latest.json) names the newest copy
and the SHA-256 of its bytes, so a reader never takes a partial or foreign object for it.
Only names and that pointer are in the clear: no e-mail, name or order, not in metadata.
"""

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

from .exceptions import OffsiteError, SettingsError
from .retention import kept_by_policy
from .snapshot import canonical_json
from .urls import without_credentials

COPY_FORMAT = "sleepguard-offsite-copy"
COPY_FORMAT_VERSION = 1
POINTER_NAME = "latest.json"
POINTER_FORMAT = "sleepguard-offsite-pointer"
NAME_STAMP = "%Y%m%dT%H%M%S.%fZ"
_COPY_NAME = re.compile(r"^backup-(\d{8}T\d{6}\.\d{6}Z)-([0-9a-f]{16})\.age$")
# A pointer is a few hundred bytes; anything much larger under that name is not ours.
MAX_POINTER_BYTES = 4096


@dataclass(frozen=True)
class Location:
    """The bucket and the prefix (without slashes at its ends, maybe empty) the copies live under."""

    bucket: str
    prefix: str

    def key(self, name):
        """The object key of one of our names."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def name(self, key):
        """Our name from an object key under the prefix; None for a key elsewhere."""
        head = f"{self.prefix}/" if self.prefix else ""
        if not key.startswith(head) or "/" in key[len(head):]:
            return None
        return key[len(head):]


def location(settings):
    """Where the copies go, from OFFSITE_URL (already validated as s3://bucket/prefix)."""
    parts = urlsplit(settings.offsite_url)
    return Location(parts.netloc, parts.path.strip("/"))


def is_configured(settings):
    """True when off-site copies are asked for: without OFFSITE_URL the rest of sleepguard ignores them."""
    return bool(settings.offsite_url)


def require_offsite(settings):
    """Raise a one-line SettingsError when off-site copies cannot work with these settings."""
    if not settings.offsite_url:
        raise SettingsError("OFFSITE_URL is not set: put e.g. OFFSITE_URL=s3://my-bucket/sleepguard in .env")
    if not settings.offsite_recipient:
        raise SettingsError("OFFSITE_RECIPIENT is not set: make a key with manual_backup.py --offsite-keygen "
                            "and put the OFFSITE_RECIPIENT=age1... line it prints in .env")
    if settings.offsite_endpoint_url and urlsplit(settings.offsite_endpoint_url).path not in ("", "/"):
        raise SettingsError("OFFSITE_ENDPOINT_URL must be the store's address without a path, e.g. "
                            "https://s3.eu-central-003.backblazeb2.com (the bucket goes in OFFSITE_URL)")


# --- names ---

def new_copy_id():
    """The id of one queued copy, chosen once: random, so it says nothing about the content."""
    return secrets.token_hex(8)


def copy_name(backup_time, copy_id):
    """The object name of a copy of the backup taken at backup_time (aware UTC)."""
    return f"backup-{backup_time.astimezone(timezone.utc).strftime(NAME_STAMP)}-{copy_id}.age"


def name_time(name):
    """The backup time in one of our copy names (aware UTC); None for a name that is not ours."""
    match = _COPY_NAME.match(name)
    if match is None:
        return None
    return datetime.strptime(match[1], NAME_STAMP).replace(tzinfo=timezone.utc)


def newest_first(names):
    """Our copy names among names, newest backup first, as (name, backup time); others are left out."""
    ours = [(name, name_time(name)) for name in names]
    return sorted(((name, when) for name, when in ours if when is not None), key=lambda item: (item[1], item[0]),
                  reverse=True)


def chosen_copies(names, at=None):
    """Our copy names newest first, only those taken at or before `at` when given (a naive time is local time)."""
    at = at and at.astimezone(timezone.utc)
    return [name for name, when in newest_first(names) if at is None or when <= at]


def remote_kept(names, settings, now, pointed=None):
    """The names the remote keeps: the local retention rule on the times in the names, and the pointer's copy."""
    keep = kept_by_policy(newest_first(names), settings.keep_last, settings.keep_hourly, settings.keep_daily, now)
    if pointed is not None:
        keep.add(pointed)
    return keep


# --- the pointer to the latest copy ---

def pointer_bytes(name, data):
    """The pointer naming the copy `name` whose encrypted bytes are `data`."""
    document = {"format": POINTER_FORMAT, "name": name, "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data)}
    return json.dumps(document, indent=2).encode() + b"\n"


def parse_pointer(data):
    """(name, sha256) from a pointer's bytes; OffsiteError when it is not one of ours."""
    try:
        document = json.loads(data[:MAX_POINTER_BYTES])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise OffsiteError(f"the pointer {POINTER_NAME} is not valid JSON") from None
    if not isinstance(document, dict) or document.get("format") != POINTER_FORMAT \
            or name_time(str(document.get("name"))) is None or not isinstance(document.get("sha256"), str):
        raise OffsiteError(f"the pointer {POINTER_NAME} is not a sleepguard pointer")
    return document["name"], document["sha256"]


def matches_pointer(data, sha256):
    """True when the copy's bytes are exactly the ones the pointer names."""
    return hashlib.sha256(data).hexdigest() == sha256


# --- what a copy holds (inside the encryption) ---

@dataclass
class CopyContents:
    """One decrypted copy: the backup file's bytes and what a watcher taking over needs with it."""

    backup: bytes
    backup_time: datetime
    backend_url: str
    watermark: str | None
    pins: dict | None
    restored_pins: dict


def iso_time(moment):
    """An aware time in the Z form every file of ours uses; None stays None."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z") if moment else None


def copy_plaintext(backup_data, snapshot, pins, restored_pins):
    """The bytes a copy encrypts: the backup document as it is in its file, with its back end, watermark and PINs."""
    document = {"format": COPY_FORMAT, "format_version": COPY_FORMAT_VERSION,
                "backend_url": without_credentials(snapshot.meta.get("backend_url") or ""),
                "watermark": iso_time(snapshot.watermark()),
                "backup_sha256": hashlib.sha256(backup_data).hexdigest(),
                "pins": pins, "restored_pins": restored_pins,
                # The file's text as it is: decrypting gives back exactly the local backup.
                "backup": backup_data.decode("utf-8")}
    return canonical_json(document)


def parse_plaintext(data, backup_time):
    """Read a decrypted copy and check it is whole; OffsiteError saying what is wrong."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise OffsiteError("the copy decrypts to something that is not JSON") from None
    if not isinstance(document, dict) or document.get("format") != COPY_FORMAT:
        raise OffsiteError("the copy is not a sleepguard off-site copy")
    if document.get("format_version") != COPY_FORMAT_VERSION:
        raise OffsiteError(f"copy format version {document.get('format_version')!r} is not one this sleepguard reads")
    backup = document.get("backup")
    if not isinstance(backup, str):
        raise OffsiteError("the copy holds no backup")
    backup = backup.encode("utf-8")
    if hashlib.sha256(backup).hexdigest() != document.get("backup_sha256"):
        raise OffsiteError("the backup inside the copy fails its checksum")
    pins, restored = document.get("pins"), document.get("restored_pins") or {}
    if (pins is not None and not isinstance(pins, dict)) or not isinstance(restored, dict):
        raise OffsiteError("the PINs inside the copy have the wrong shape")
    return CopyContents(backup, backup_time, str(document.get("backend_url") or ""), document.get("watermark"),
                        pins, restored)
