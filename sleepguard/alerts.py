"""The alert outbox: which problems are worth telling the owner, queued privately until delivered to every URL.

A service calls ``observe(settings, conditions)`` once per check with the problems it sees now,
each a ``(key, severity, text)``; one-off events (a wipe restored) go through ``announce()``.
The rules: a problem alerts only once it has held ALERT_AFTER checks in a row (a blip that
recovers sends nothing); while it holds, a reminder every ALERT_REPEAT; once it has been gone
ALERT_AFTER checks in a row, "fine again" (a problem that only pauses, as a failing restore does
while it tries again, is not fine). Lines queued within ALERT_BATCH_SECONDS of the first go out as one message. Messages
wait in DATA_DIR/alerts_outbox.json (0600, atomic) with a delivery record per URL, so a
restart or an outage loses nothing; ``start_sender()`` spawns the short-lived
``sleepguard.alert_sender`` process that loads apprise and delivers, so no service ever does.
Every text passes masking.scrub() on the way in: the outbox holds nothing secret.
"""

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .atomicfile import PRIVATE_FILE_MODE, write_json_atomic
from .exceptions import AlertError
from .flocks import flock_within, try_flock
from .masking import scrub, settings_secrets
from .settings import PROJECT_DIR

log = logging.getLogger(__name__)

OUTBOX_NAME = "alerts_outbox.json"
OUTBOX_LOCK_NAME = ".alerts_outbox.lock"
SENDER_LOCK_NAME = ".alert_sender.lock"
SENDER_LOG_NAME = "alert_sender.log"
SENDER_MODULE = "sleepguard.alert_sender"
# The outbox lock is held for one read-modify-write, milliseconds; longer means something is stuck.
LOCK_SECONDS = 10.0
# Retries double from ALERT_RETRY_SECONDS up to this.
MAX_RETRY_PAUSE = 3600.0
# An outage of weeks must not grow the file without end: the oldest messages go first.
MAX_MESSAGES = 200
# One message stays readable on a phone; the status screen has the rest.
MAX_LINES = 30
MAX_LINE_CHARS = 500
OUTBOX_VERSION = 1

# Worst last: a message takes the worst severity of its lines. "fine" is a problem's end.
SEVERITIES = ("fine", "info", "warning", "critical")
TITLES = {"fine": "sleepguard: fine again", "info": "sleepguard: for your information",
          "warning": "sleepguard: please act", "critical": "sleepguard: problem"}
FOOTER = "Details: python3 backup_status.py on the watcher."


@dataclass(frozen=True)
class Delivery:
    """One message due to one URL: what the sender sends, and where it records the result."""

    message_id: str
    target: str
    severity: str
    title: str
    body: str


def configured(settings):
    """True when alerts have somewhere to go."""
    return bool(settings.alert_urls or settings.alert_config)


def outbox_path(settings):
    return Path(settings.data_dir) / OUTBOX_NAME


def _empty_outbox():
    return {"version": OUTBOX_VERSION, "conditions": {}, "messages": []}


def read_outbox(settings):
    """The outbox as it is on disk (written atomically, so safe to read unlocked); empty when missing."""
    path = outbox_path(settings)
    try:
        outbox = json.loads(path.read_bytes())
    except FileNotFoundError:
        return _empty_outbox()
    except (OSError, ValueError) as exc:
        raise AlertError(f"the alert outbox {path} is unreadable ({exc}): move it aside to start a new one") from exc
    if not isinstance(outbox, dict) or not isinstance(outbox.get("messages"), list) \
            or not isinstance(outbox.get("conditions"), dict):
        raise AlertError(f"the alert outbox {path} is not one of ours: move it aside to start a new one")
    return outbox


@contextmanager
def _locked_outbox(settings):
    """The outbox under its lock for one read-modify-write; written back atomically on success."""
    lock_path = Path(settings.data_dir) / OUTBOX_LOCK_NAME
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        if not flock_within(fd, LOCK_SECONDS):
            raise AlertError(f"the alert outbox lock {lock_path} has been held over {LOCK_SECONDS:g} s")
        outbox = read_outbox(settings)
        before = json.dumps(outbox, sort_keys=True)
        yield outbox
        if len(outbox["messages"]) > MAX_MESSAGES:
            dropped = len(outbox["messages"]) - MAX_MESSAGES
            log.warning("alert outbox full: dropping the %d oldest undelivered messages", dropped)
            del outbox["messages"][:dropped]
        # A check with nothing to tell changes nothing: rewriting the file each round would cost a day of writes.
        if json.dumps(outbox, sort_keys=True) != before:
            write_json_atomic(outbox_path(settings), outbox)
    finally:
        os.close(fd)


# --- the rules ---

def _local_time(epoch):
    """A time as the owner reads it: local, with the zone."""
    return time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(epoch))


def _step(records, current, now, settings):
    """Advance each problem's streak by one check; return the (severity, line) pairs now worth telling."""
    told = []
    for key, (severity, text) in current.items():
        record = records.setdefault(key, {"streak": 0, "since": now, "alerted_at": None, "reminded_at": None})
        # The streak stops at ALERT_AFTER, all it is compared with, so a problem that holds leaves the file as it is.
        record.update(severity=severity, text=text, streak=min(record["streak"] + 1, settings.alert_after), gone=0)
        if record["alerted_at"] is None:
            if record["streak"] >= settings.alert_after:
                record["alerted_at"] = record["reminded_at"] = now
                told.append((severity, text))
        elif now - record["reminded_at"] >= settings.alert_repeat:
            record["reminded_at"] = now
            told.append((severity, f"Still a problem since {_local_time(record['since'])}: {text}"))
    for key in [key for key in records if key not in current]:
        record = records[key]
        record["gone"] = record.get("gone", 0) + 1
        # Never told: forgotten at once (a blip). Told: fine only once it stayed away as long as it had to hold.
        if record["alerted_at"] is None or record["gone"] >= settings.alert_after:
            records.pop(key)
            if record["alerted_at"] is not None:
                told.append(("fine", f"Fine again: {record['text']}"))
    return told


def _queue(outbox, severity, line, now, settings):
    """Add a line to the message still collecting its batch, or start a new one."""
    messages = outbox["messages"]
    if messages and messages[-1]["due"] > now and not messages[-1]["deliveries"]:
        message = messages[-1]
    else:
        message = {"id": uuid.uuid4().hex, "created": now, "due": now + settings.alert_batch_seconds,
                   "lines": [], "severities": [], "deliveries": {}}
        messages.append(message)
    message["lines"].append(line[:MAX_LINE_CHARS])
    message["severities"].append(severity)


def _clean(settings, severity, text):
    if severity not in SEVERITIES[1:]:
        raise AlertError(f"alert severity must be one of {', '.join(SEVERITIES[1:])}, got {severity!r}")
    return scrub(" ".join(str(text).split()), settings_secrets(settings))


def observe(settings, conditions, now=None, send=True):
    """Take one check's problems, (key, severity, text) each; queue what is worth telling; return those lines.

    Call it every check, with every problem that holds now: a key missing from conditions has ended.
    """
    if not configured(settings):
        return []
    now = time.time() if now is None else now
    current = {key: (severity, _clean(settings, severity, text)) for key, severity, text in conditions}
    try:
        with _locked_outbox(settings) as outbox:
            told = _step(outbox["conditions"], current, now, settings)
            for severity, line in told:
                _queue(outbox, severity, line, now, settings)
    except (AlertError, OSError) as exc:
        # Telling the owner must never stop the loop that watches the shop: say it in the log instead.
        log.warning("alerts not recorded this check: %s", exc)
        return []
    if send:
        start_sender(settings, now)
    return [line for _severity, line in told]


def announce(settings, severity, text, now=None, send=True):
    """Queue a one-off event (a wipe restored, PINs to hand out) at once: it holds no state to wait out."""
    if not configured(settings):
        return None
    now = time.time() if now is None else now
    line = _clean(settings, severity, text)
    try:
        with _locked_outbox(settings) as outbox:
            _queue(outbox, severity, line, now, settings)
    except (AlertError, OSError) as exc:
        log.warning("alert not recorded (%s): %s", exc, line)
        return None
    if send:
        start_sender(settings, now)
    return line


# --- delivery bookkeeping, for the sender ---

def message_text(message):
    """(severity, title, body) of an outbox message: the worst severity names it, a line per alert."""
    severity = max(message["severities"], key=SEVERITIES.index)
    lines = message["lines"]
    shown = lines[:MAX_LINES]
    if len(lines) > MAX_LINES:
        shown.append(f"... and {len(lines) - MAX_LINES} more")
    count = f" ({len(lines)} alerts)" if len(lines) > 1 else ""
    body = "\n".join([*(f"- {line}" for line in shown), "", FOOTER]) if len(lines) > 1 \
        else f"{lines[0]}\n\n{FOOTER}"
    return severity, TITLES[severity] + count, body


def retry_pause(settings, attempts):
    """Seconds to wait after the attempts-th failed try: ALERT_RETRY_SECONDS doubling, at most an hour."""
    cap = max(MAX_RETRY_PAUSE, settings.alert_retry_seconds)
    return min(settings.alert_retry_seconds * 2 ** max(attempts - 1, 0), cap)


def _complete(message):
    return bool(message["deliveries"]) and all(d["delivered"] is not None for d in message["deliveries"].values())


def due_deliveries(settings, targets, now=None):
    """Every (message, URL) now due, oldest first; targets are the keys of the URLs configured now.

    A URL added since a message was queued gets it too; a URL removed is no longer waited for.
    """
    now = time.time() if now is None else now
    targets = list(targets)
    due = []
    with _locked_outbox(settings) as outbox:
        for message in outbox["messages"]:
            if message["due"] > now:
                continue
            deliveries = message["deliveries"]
            for target in targets:
                deliveries.setdefault(target, {"delivered": None, "attempts": 0, "next_try": now, "error": ""})
            for target in [target for target in deliveries if target not in targets]:
                del deliveries[target]
        outbox["messages"] = [message for message in outbox["messages"] if not _complete(message)]
        for message in outbox["messages"]:
            if message["due"] > now:
                continue
            severity, title, body = message_text(message)
            due.extend(Delivery(message["id"], target, severity, title, body)
                       for target, record in message["deliveries"].items()
                       if record["delivered"] is None and record["next_try"] <= now)
    return due


def record_delivery(settings, delivery, delivered, error="", now=None):
    """Record one URL's result for one message; a delivered message leaves the outbox once every URL has it."""
    now = time.time() if now is None else now
    with _locked_outbox(settings) as outbox:
        for message in outbox["messages"]:
            if message["id"] != delivery.message_id or delivery.target not in message["deliveries"]:
                continue
            record = message["deliveries"][delivery.target]
            record["attempts"] += 1
            if delivered:
                record.update(delivered=now, error="")
            else:
                record.update(next_try=now + retry_pause(settings, record["attempts"]),
                              error=scrub(error, settings_secrets(settings))[:MAX_LINE_CHARS])
        outbox["messages"] = [message for message in outbox["messages"] if not _complete(message)]


def pending_count(settings):
    """How many messages still wait for at least one URL (for the status screen)."""
    return len(read_outbox(settings)["messages"])


def _anything_due(settings, now):
    for message in read_outbox(settings)["messages"]:
        if message["due"] > now:
            continue
        records = message["deliveries"].values()
        if not records or any(r["delivered"] is None and r["next_try"] <= now for r in records):
            return True
    return False


# --- the sender process ---

_sender = None


def sender_running(settings):
    """True while a sender holds its lock (any process, not only one we started)."""
    fd = os.open(Path(settings.data_dir) / SENDER_LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 PRIVATE_FILE_MODE)
    try:
        return not try_flock(fd)
    finally:
        os.close(fd)


def start_sender(settings, now=None):
    """Spawn the sender when a message is due and none runs; never waits for it. Returns the process or None.

    Settings reach it through the environment (ours, as the launcher gave it, or .env), never argv.
    """
    global _sender
    now = time.time() if now is None else now
    if _sender is not None and _sender.poll() is None:
        return None
    try:
        if not _anything_due(settings, now) or sender_running(settings):
            return None
    except (AlertError, OSError) as exc:
        log.warning("alerts cannot be sent now: %s", exc)
        return None
    env = {**os.environ, "DATA_DIR": str(Path(settings.data_dir).resolve())}
    log_fd = os.open(Path(settings.data_dir) / SENDER_LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                     PRIVATE_FILE_MODE)
    try:
        _sender = subprocess.Popen([sys.executable, "-m", SENDER_MODULE], cwd=PROJECT_DIR, env=env,
                                   stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd, start_new_session=True)
    except OSError as exc:
        log.warning("could not start the alert sender: %s", exc)
        return None
    finally:
        os.close(log_fd)
    return _sender
