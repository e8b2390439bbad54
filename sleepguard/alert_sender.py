"""Deliver the alert outbox through apprise, in a short-lived process, so no service carries apprise's memory.

Run as ``python3 -m sleepguard.alert_sender`` with the settings in the environment (DATA_DIR,
ALERT_URLS ... never on the command line). One sender at a time (an flock); it sends every
due message to every URL that has not had it, one URL at a time, recording each result at
once, and exits. Killed at any instant it loses nothing: a message is dropped only after it
was recorded as delivered everywhere, and at most the one send in flight goes out twice.
"""

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import apprise

from . import alerts
from .atomicfile import PRIVATE_FILE_MODE
from .exceptions import AlertError, SleepguardError
from .flocks import try_flock
from .logsetup import setup_service_logging
from .masking import describe_url, guard_logger, scrub, settings_secrets, url_key, url_secrets
from .settings import load_settings
from .wording import NO_ALERT_URLS, test_alert_lines

log = logging.getLogger(__name__)

# At DEBUG apprise logs whole URLs and urllib3 the paths they post to, tokens included.
QUIET_LOGGERS = ("apprise", "urllib3")
# Even at WARNING apprise quotes a URL it refuses, and urllib3 the path it retries.
SCRUBBED_LOGGERS = ("apprise", "urllib3.connectionpool")
NOTIFY_TYPES = {"fine": apprise.NotifyType.SUCCESS, "info": apprise.NotifyType.INFO,
                "warning": apprise.NotifyType.WARNING, "critical": apprise.NotifyType.FAILURE}
TEST_TITLE = "sleepguard: test alert"
TEST_BODY = "This is a test from sleepguard. If you can read it, alerts about your shop's backups reach you."


@dataclass(frozen=True)
class Target:
    """One place alerts go: its tracking key, the label it is shown by, and apprise's object for it."""

    key: str
    label: str
    service: object  # an apprise plugin, or None when apprise did not accept the URL
    secrets: tuple


@dataclass(frozen=True)
class TestResult:
    """What --test-alert says for one URL."""

    label: str
    delivered: bool
    reason: str


def quiet_apprise(settings):
    """Keep apprise's and urllib3's loggers at WARNING or above whatever LOG_LEVEL says, and scrub what they say."""
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)
    for name in SCRUBBED_LOGGERS:
        guard_logger(name, settings_secrets(settings))


def _target(url, service):
    return Target(url_key(url), describe_url(url), service, tuple(url_secrets(url)))


def load_targets(settings):
    """Every URL of ALERT_URLS and ALERT_CONFIG as a Target, in that order; a URL apprise refuses keeps its place."""
    quiet_apprise(settings)
    targets = [_target(url, apprise.Apprise.instantiate(url)) for url in settings.alert_urls.split()]
    if settings.alert_config:
        config = apprise.AppriseConfig()
        if not config.add(settings.alert_config):
            log.warning("ALERT_CONFIG %s could not be read as an apprise config file", settings.alert_config)
        # 2.x calls it services(); 1.9 servers().
        listed = config.services() if hasattr(config, "services") else config.servers()
        for service in listed:
            # The full URL (with its secrets) identifies the entry; it is only ever hashed or masked.
            targets.append(_target(service.url(), service))
    return targets


def _why_not(result, target, settings):
    """One line saying why a URL did not deliver, from apprise's own result, with nothing secret in it."""
    reasons = [entry.message for service_result in result for entry in service_result.logs()
               if getattr(entry, "level", "") in ("WARNING", "ERROR")]
    status = result.status.name.lower()
    reason = f"{status}: {reasons[-1]}" if reasons else status
    return scrub(reason, (*target.secrets, *settings_secrets(settings)))


def send_one(target, title, body, severity, settings):
    """Send one message to one URL within ALERT_TIMEOUT; return (delivered, why not)."""
    if target.service is None:
        return False, "apprise does not accept this URL: check its spelling against apprise's list of services"
    one = apprise.Apprise()
    one.add(target.service)
    try:
        result = one.notify(body=body, title=title, notify_type=NOTIFY_TYPES[severity],
                            body_format=apprise.NotifyFormat.TEXT, timeout=settings.alert_timeout)
    except Exception as exc:  # noqa: BLE001 - a plugin's own bug must not stop the other URLs
        why = f"apprise failed: {type(exc).__name__}: {exc}"
        return False, scrub(why, (*target.secrets, *settings_secrets(settings)))
    # 2.x answers per URL; this Apprise holds one, so its one result is this URL's.
    if result and all(bool(service_result) for service_result in result):
        return True, ""
    return False, _why_not(result, target, settings)


def deliver_outbox(settings, now=None):
    """Send every due (message, URL) once, recording each result; return (delivered, failed) counts.

    A URL that fails is not tried again in this run: its other messages wait for its back-off.
    """
    targets = {target.key: target for target in load_targets(settings)}
    delivered = failed = 0
    failing = set()
    for delivery in alerts.due_deliveries(settings, targets, now):
        if delivery.target in failing:
            continue
        target = targets[delivery.target]
        ok, why = send_one(target, delivery.title, delivery.body, delivery.severity, settings)
        alerts.record_delivery(settings, delivery, ok, why)
        if ok:
            delivered += 1
            log.info("alert %s delivered to %s", delivery.message_id[:8], target.label)
        else:
            failed += 1
            failing.add(delivery.target)
            log.warning("alert %s not delivered to %s (%s); will try again", delivery.message_id[:8], target.label, why)
    return delivered, failed


def test_alert(settings):
    """Send a test message to every URL now, outside the outbox; a TestResult per URL (empty: none set).

    Apprise's own warnings stay out of the command's stderr: each one is in its URL's reason, said once.
    """
    results = []
    targets = load_targets(settings)
    logging.getLogger("apprise").propagate = False
    for target in targets:
        ok, why = send_one(target, TEST_TITLE, TEST_BODY, "info", settings)
        results.append(TestResult(target.label, ok, why))
    return results


def test_alert_report(settings):
    """--test-alert: a test to every URL; (the lines to print, True when each delivered). AlertError when none is set."""
    results = test_alert(settings)
    if not results:
        raise AlertError(NO_ALERT_URLS)
    return test_alert_lines(results), all(result.delivered for result in results)


def run(settings):
    """One sender's life: take the sender lock or leave at once, deliver what is due, exit."""
    fd = os.open(Path(settings.data_dir) / alerts.SENDER_LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 PRIVATE_FILE_MODE)
    try:
        if not try_flock(fd):
            log.info("another alert sender is running: leaving it the outbox")
            return 0
        started = time.monotonic()
        delivered, failed = deliver_outbox(settings)
        log.info("alert sender done in %.1f s: %d delivered, %d to try again", time.monotonic() - started,
                 delivered, failed)
        return 0
    finally:
        os.close(fd)


def main():
    try:
        settings = load_settings()
        setup_service_logging(Path(settings.data_dir) / alerts.SENDER_LOG_NAME, settings.log_max_bytes,
                              settings.log_backup_count, settings.log_level)
        quiet_apprise(settings)
        return run(settings)
    except SleepguardError as exc:
        logging.getLogger(__name__).error("alert sender stopped: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
