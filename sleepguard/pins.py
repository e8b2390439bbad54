"""PINs for restored users: the owner's private PIN file in, fresh random PINs out to restored_pins.json.

The API never returns PINs, so a restored account gets either the PIN the owner keeps in
PINS_FILE or a new random one that only the owner can read. Never a shared default.
"""

import json
import logging
import os
import secrets
import stat
import string
import threading
from pathlib import Path

from .atomicfile import ensure_private_dir, write_json_atomic
from .emails import stored_form
from .exceptions import PinFileError

log = logging.getLogger(__name__)

RESTORED_PINS_NAME = "restored_pins.json"
MIN_PIN_LENGTH = 4
# Restore threads merge into the same file: one read-modify-write at a time.
_RESTORED_PINS_LOCK = threading.Lock()


def _describe_open_bits(mode):
    """Say in words what the group/other bits of a mode let others do."""
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return "readable by others"
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "writable by others"
    return "open to others"


def _read_private_json(path, what):
    """Read a JSON file only if it is ours and closed to everyone else; None when it does not exist."""
    try:
        # O_NONBLOCK: a FIFO in its place is refused below instead of hanging the open.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PinFileError(f"{what} {path} cannot be opened: {exc.strerror}") from None
    # fstat on the open file, so the file checked is the file read; before fdopen, which refuses a folder.
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise PinFileError(f"{what} {path} is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_uid != os.getuid():
            raise PinFileError(f"{what} {path} is owned by uid {info.st_uid}, not by us (uid {os.getuid()}): "
                               f"chown it to the user running sleepguard")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise PinFileError(f"{what} {path} is {_describe_open_bits(mode)} (mode {mode:04o}): chmod 600 it")
        data = handle.read()
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        # The decoder's message names a position, never the text, so no PIN can leak through it.
        position = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise PinFileError(f"{what} {path} is not valid JSON{position}") from None


def _check_pin_map(pins, path, what):
    if not isinstance(pins, dict):
        raise PinFileError(f"{what} {path} must be a JSON object {{\"email\": \"PIN\"}}, got a {type(pins).__name__}")
    for email, pin in pins.items():
        if not email or not isinstance(pin, str) or not pin:
            raise PinFileError(f"{what} {path}: the entry for {email!r} must be a non-empty PIN string")
    return pins


def _in_stored_form(pins, path, what):
    """{stored e-mail: PIN}: the owner types addresses as they like, the server keeps one form of each."""
    stored, typed_as = {}, {}
    for key, pin in pins.items():
        email = stored_form(key)
        if email in stored:
            # Names both keys, never a PIN: the owner must say which one is meant.
            raise PinFileError(f"{what} {path}: the keys {typed_as[email]!r} and {key!r} are the same address "
                               f"{email!r} as the server stores it: keep one of them")
        stored[email], typed_as[email] = pin, key
    return stored


def load_pins_file(path):
    """Read the owner's PIN file {stored e-mail: PIN}; {} when missing; PinFileError when unsafe or malformed."""
    pins = _read_private_json(Path(path), "PIN file")
    if pins is None:
        return {}
    return _in_stored_form(_check_pin_map(pins, path, "PIN file"), path, "PIN file")


def pins_or_why_not(path, must_exist=False):
    """({email: PIN}, '') from the owner's PIN file, or ({}, why) when it may not be used: a restore goes on without it.

    A file open to others is refused before a byte of it is read; must_exist: the owner named it, so missing is a problem.
    """
    if must_exist and not Path(path).exists():
        return {}, f"PIN file {path} does not exist"
    try:
        return load_pins_file(path), ""
    except PinFileError as exc:
        return {}, str(exc)


def with_carried_pins(pins_file, pins, restored, carried):
    """The PINs a restore plans with when an off-site copy carries some: as write_carried_pins will leave the files.

    carried is the copy's (PIN file, restored PINs); checked as those files are, and nothing written yet.
    """
    carried_pins, carried_restored = carried
    where = "(carried by the off-site copy)"
    if carried_pins and not Path(pins_file).exists():
        pins = _in_stored_form(_check_pin_map(carried_pins, where, "PIN file"), where, "PIN file")
    if carried_restored:
        checked = _check_pin_map(carried_restored, where, "restored PIN file")
        restored = {**restored, **_in_stored_form(checked, where, "restored PIN file")}
    return pins, restored


def write_carried_pins(settings, carried):
    """An off-site copy's (PIN file, restored PINs), 0600: the owner's PIN file only when none is here, restored merged."""
    pins, restored = carried
    if pins and not settings.pins_file.exists():
        ensure_private_dir(settings.pins_file.parent)
        write_json_atomic(settings.pins_file, pins)
    if restored:
        record_restored_pins(settings.data_dir, restored)


def hand_out_done(data_dir, emails=()):
    """The owner handed these users their new PIN (all waiting when none named): remove them; return who was removed.

    A named user with no PIN waiting is a PinFileError naming them, and nothing is removed.
    """
    waiting = read_restored_pins(data_dir)
    unknown = sorted(set(emails) - set(waiting))
    if unknown:
        raise PinFileError(f"no new PIN is waiting for {', '.join(unknown)} in {restored_pins_path(data_dir)}; "
                           f"waiting: {', '.join(sorted(waiting)) or 'nobody'}")
    done = sorted(set(emails) or waiting)
    forget_restored_pins(data_dir, done)
    return done


def new_random_pin(length=6):
    """A fresh PIN of random digits from `secrets`; all-same or straight-run PINs are drawn again."""
    if length < MIN_PIN_LENGTH:
        raise ValueError(f"a PIN needs at least {MIN_PIN_LENGTH} digits")
    while True:
        pin = "".join(secrets.choice(string.digits) for _ in range(length))
        if not _is_guessable(pin):
            return pin


def _is_guessable(pin):
    steps = {int(b) - int(a) for a, b in zip(pin, pin[1:])}
    return len(steps) == 1 and steps <= {-1, 0, 1}


def restored_pins_path(data_dir):
    """Where new PINs of restored users wait for the owner to hand them out."""
    return Path(data_dir) / RESTORED_PINS_NAME


def read_restored_pins(data_dir):
    """The restored users' PINs {stored e-mail: PIN} (private file; {} when none)."""
    path = restored_pins_path(data_dir)
    pins = _read_private_json(path, "restored PIN file")
    if pins is None:
        return {}
    return _in_stored_form(_check_pin_map(pins, path, "restored PIN file"), path, "restored PIN file")


def record_restored_pins(data_dir, pins):
    """Merge {email: PIN} into restored_pins.json, atomically and 0600; a None PIN removes that entry."""
    if not pins:
        return
    if not Path(data_dir).is_dir():
        ensure_private_dir(data_dir)
    with _RESTORED_PINS_LOCK:
        merged = read_restored_pins(data_dir)
        for email, pin in pins.items():
            email = stored_form(email)
            if pin is None:
                merged.pop(email, None)
            else:
                merged[email] = pin
        write_json_atomic(restored_pins_path(data_dir), dict(sorted(merged.items())))
    log.debug("restored PIN file updated for %s", ", ".join(sorted(pins)))


def forget_restored_pins(data_dir, emails):
    """Remove these users' entries from restored_pins.json: their PIN opens no account."""
    record_restored_pins(data_dir, {email: None for email in emails})


def pending_pins(data_dir):
    """E-mails of restored users whose new PIN is waiting in restored_pins.json to be handed out."""
    return sorted(read_restored_pins(data_dir))
