"""age encryption of the off-site copies (pyrage): encrypt to the owner's public key, read with their identity file.

pyrage writes the standard age format (age-encryption.org/v1, X25519 recipients), so a copy
also decrypts with the age command line and nothing of sleepguard:
    age -d -i identity.txt backup-20261201T135800.123456Z-0123456789abcdef.age > copy.json
The watcher needs only the public key to upload; the identity file is for checks and restores.
"""

import hashlib
import logging
import os
import stat
from datetime import datetime, timezone
from pathlib import Path

from .atomicfile import PRIVATE_FILE_MODE, ensure_private_dir, fsync_dir
from .exceptions import OffsiteError

log = logging.getLogger(__name__)

# An age-keygen identity file is three short lines; a much larger file is not one.
MAX_IDENTITY_BYTES = 64 * 1024


def _pyrage():
    """The pyrage module, imported only when off-site copies are used; a one-line error when missing."""
    try:
        import pyrage
    except ImportError:
        raise OffsiteError("off-site copies need the pyrage package: pip install pyrage "
                           "(it has no wheel for 32-bit ARM: build it with a Rust toolchain there)") from None
    return pyrage


def recipient_fingerprint(recipient):
    """A short fingerprint of a public key, for the status screen: the owner compares it with their key."""
    if not recipient:
        return ""
    return "age:" + hashlib.sha256(recipient.encode()).hexdigest()[:12]


def encrypt(data, recipient):
    """data encrypted with age to the age1... public key."""
    pyrage = _pyrage()
    try:
        key = pyrage.x25519.Recipient.from_str(recipient)
    except pyrage.RecipientError:
        raise OffsiteError("OFFSITE_RECIPIENT is not a valid age public key") from None
    return pyrage.encrypt(data, [key])


def decrypt(data, identity):
    """The plaintext of an age file; OffsiteError when this identity cannot open it or it is damaged."""
    pyrage = _pyrage()
    try:
        return pyrage.decrypt(data, [identity])
    except pyrage.DecryptError as exc:
        raise OffsiteError(f"cannot decrypt with this identity file (not encrypted to it, or damaged): {exc}") from None


def _read_private_text(path):
    """The text of a file that is ours and closed to everyone else; OffsiteError saying why not."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise OffsiteError(f"identity file {path} does not exist (OFFSITE_IDENTITY_FILE)") from None
    except OSError as exc:
        raise OffsiteError(f"identity file {path} cannot be opened: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        mode = stat.S_IMODE(info.st_mode)
        if not stat.S_ISREG(info.st_mode):
            raise OffsiteError(f"identity file {path} is not a regular file")
        if info.st_uid != os.getuid():
            raise OffsiteError(f"identity file {path} is owned by uid {info.st_uid}, not by us: chown it")
        if mode & 0o077:
            raise OffsiteError(f"identity file {path} is open to others (mode {mode:04o}): chmod 600 it")
        data = handle.read(MAX_IDENTITY_BYTES + 1)
    if len(data) > MAX_IDENTITY_BYTES:
        raise OffsiteError(f"identity file {path} is too large to be an age identity file")
    return data.decode("utf-8", errors="replace")


def load_identity(settings):
    """The age identity of OFFSITE_IDENTITY_FILE, refused unless 0600 and ours; OffsiteError saying why."""
    if not settings.offsite_identity_file:
        raise OffsiteError("OFFSITE_IDENTITY_FILE is not set: point it at the identity file that "
                           "manual_backup.py --offsite-keygen wrote")
    path = Path(settings.offsite_identity_file).expanduser()
    text = _read_private_text(path)
    pyrage = _pyrage()
    keys = [line.strip() for line in text.splitlines() if line.strip().startswith("AGE-SECRET-KEY-")]
    if len(keys) != 1:
        raise OffsiteError(f"identity file {path} must hold exactly one AGE-SECRET-KEY-... line, found {len(keys)}")
    try:
        return pyrage.x25519.Identity.from_str(keys[0])
    except pyrage.IdentityError:
        # The message never quotes the line: it is the private key.
        raise OffsiteError(f"identity file {path} holds a damaged AGE-SECRET-KEY line") from None


def check_recipient(settings, identity):
    """Raise OffsiteError when OFFSITE_RECIPIENT is not the identity's public key: copies would be unreadable."""
    public = str(identity.to_public())
    if public != settings.offsite_recipient:
        raise OffsiteError(f"OFFSITE_RECIPIENT ({recipient_fingerprint(settings.offsite_recipient)}) is not the "
                           f"public key of OFFSITE_IDENTITY_FILE ({recipient_fingerprint(public)}): copies "
                           "encrypted to it could not be read with that identity")


def keygen(path):
    """Write a new identity file (0600, never over an existing one) and return its OFFSITE_RECIPIENT= line."""
    pyrage = _pyrage()
    path = Path(path).expanduser()
    if path.exists() or path.is_symlink():
        raise OffsiteError(f"{path} already exists: it may be the only key to existing copies, so it is never "
                           "overwritten; choose another file name")
    if not path.parent.exists():
        ensure_private_dir(path.parent)
    identity = pyrage.x25519.Identity.generate()
    public = str(identity.to_public())
    created = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    text = f"# created: {created}\n# public key: {public}\n{identity}\n"
    # O_EXCL: a file appearing meanwhile is not overwritten either.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
    except FileExistsError:
        raise OffsiteError(f"{path} already exists: choose another file name") from None
    except OSError as exc:
        raise OffsiteError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), PRIVATE_FILE_MODE)
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_dir(path.parent)
    log.info("wrote a new age identity file %s (public key %s)", path, recipient_fingerprint(public))
    return f"OFFSITE_RECIPIENT={public}"
