"""A dead man's switch (healthchecks.io protocol): pings only while PROTECTED, so silence itself is an alarm.

A service calls ``beat(settings, verdict)`` every check. ``verdict`` is anything with ``code``
(monitoring-plugin exit code, 0 = PROTECTED) and ``reasons``: lines of text, or verdict.Reason-like
objects (``kind`` and ``facts``), of which only the kind and the numbers go out. While
PROTECTED: a success ping to HEARTBEAT_URL at most every HEARTBEAT_INTERVAL. Once the verdict
has been anything else for ALERT_AFTER checks in a row: ``HEARTBEAT_URL/fail`` with the reasons
as body (counts and kinds only, at most 10 kB), again at most every HEARTBEAT_INTERVAL. When
the watcher dies the pings stop and healthchecks.io tells the owner. A ping that fails is a
warning in the log and is tried again next check; it never raises into the caller's loop.
"""

import json
import logging
import time
from pathlib import Path

import requests

from .atomicfile import write_json_atomic
from .masking import describe_url, guard_logger, scrub, settings_secrets
from .verdict import PROTECTED, WORDS

log = logging.getLogger(__name__)

STATE_NAME = "heartbeat.json"
# healthchecks.io: a ping should finish within 10 s; a few retries ride out a timeout or a 5xx.
TIMEOUT = 10.0
RETRIES = 3
# healthchecks.io keeps the first 10 kB of a ping's body.
MAX_BODY_BYTES = 10_000
FAIL_PATH = "/fail"
# At DEBUG urllib3 logs each request's path, and a ping URL's path is the check's secret.
URLLIB3_LOGGER = "urllib3.connectionpool"


def _read_state(path):
    try:
        state = json.loads(path.read_bytes())
    except (OSError, ValueError):
        # A missing or damaged file only costs one early ping.
        return {}
    return state if isinstance(state, dict) else {}


def _reason_line(reason):
    """A reason as kind and counts: a line of text as it is, a verdict.Reason as its kind and figures.

    Of a Reason's facts only numbers and the sizes of lists go out, never a "why" or a name.
    """
    if isinstance(reason, str):
        return reason
    counts = []
    for name, value in getattr(reason, "facts", {}).items():
        if isinstance(value, (list, tuple, set, dict)):
            counts.append(f"{name}: {len(value)}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            counts.append(f"{name}: {value:g}")
    kind = getattr(reason, "kind", "problem")
    return f"{kind} ({', '.join(counts)})" if counts else kind


def fail_body(settings, verdict):
    """The /fail body: the verdict and its reasons, no secret, no e-mail address, at most MAX_BODY_BYTES."""
    name = WORDS.get(verdict.code, f"exit code {verdict.code}")
    lines = [f"sleepguard: {name}", *(f"- {_reason_line(reason)}" for reason in verdict.reasons)]
    body = scrub("\n".join(lines), settings_secrets(settings), emails="drop").encode("utf-8")
    return body[:MAX_BODY_BYTES].decode("utf-8", errors="ignore")


def _send(url, body, backoff):
    """One request, retried by hand on a timeout, a refused connection or a 5xx (urllib3's own retries
    would log the URL, whose path is the check's secret); the last answer or error decides."""
    for attempt in range(RETRIES + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            if body is None:
                answer = requests.get(url, timeout=TIMEOUT)
            else:
                answer = requests.post(url, data=body.encode("utf-8"), timeout=TIMEOUT,
                                       headers={"Content-Type": "text/plain; charset=utf-8"})
        except (requests.Timeout, requests.ConnectionError) as exc:
            error, answer = exc, None
            continue
        if answer.status_code < 500:
            break
    if answer is None:
        raise error
    return answer


def ping(settings, body=None):
    """One ping: success without body, /fail with it. True when the receiver took it; never raises."""
    what = describe_url(settings.heartbeat_url) + (" /fail" if body is not None else "")
    guard_logger(URLLIB3_LOGGER, settings_secrets(settings))
    try:
        # The pause between tries is RETRY_BACKOFF's, the one setting for it.
        answer = _send(settings.heartbeat_url + (FAIL_PATH if body is not None else ""), body, settings.retry_backoff)
    except requests.RequestException as exc:
        # The exception names the URL: say only what kind of failure it was.
        log.warning("heartbeat %s failed: %s", what, type(exc).__name__)
        return False
    if answer.status_code >= 400:
        log.warning("heartbeat %s answered %d", what, answer.status_code)
        return False
    return True


def beat(settings, verdict, now=None):
    """One check's heartbeat; returns what it did: off, ping, fail, quiet, waiting or failed."""
    if not settings.heartbeat_url:
        return "off"
    now = time.time() if now is None else now
    path = Path(settings.data_dir) / STATE_NAME
    state = _read_state(path)
    before = dict(state)
    protected = verdict.code == PROTECTED
    # The streak stops at ALERT_AFTER, all it is compared with, so a problem that holds leaves the file as it is.
    state["streak"] = 0 if protected else min(int(state.get("streak", 0)) + 1, settings.alert_after)
    kind = "ok" if protected else "fail"
    if not protected and state["streak"] < settings.alert_after:
        # Not PROTECTED, so no success ping; not yet held long enough for /fail: a blip stays silent.
        action = "waiting"
    elif state.get("last_kind") == kind and now - float(state.get("last_at", 0)) < settings.heartbeat_interval:
        action = "quiet"
    elif ping(settings, None if protected else fail_body(settings, verdict)):
        state.update(last_kind=kind, last_at=now)
        action = "ping" if protected else "fail"
    else:
        action = "failed"
    if state == before:
        # A quiet check changes nothing: rewriting the file each round would cost a day of writes.
        return action
    try:
        write_json_atomic(path, state)
    except OSError as exc:
        log.warning("heartbeat state not saved (%s): the next check may ping early", exc)
    return action
