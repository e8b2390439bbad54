"""The alert rules and the outbox: what is worth telling, batched, reminded, scrubbed, tracked per URL."""

import os
import re
import stat
import subprocess
import sys

import pytest

from helpers import PROJECT_DIR, make_settings
from sleepguard import alerts, masking
from sleepguard.exceptions import SettingsError

T0 = 1_800_000_000.0
URL_A = "json://127.0.0.1:9/"
URL_B = "ntfy://mysecrettopic42"
DOWN = ("backend_down", "critical", "The back end does not answer")
FAILING = ("backups_failing", "critical", "Backups are failing")


def settings_for(data_dir, **overrides):
    values = {"ALERT_URLS": URL_A, "ALERT_AFTER": 3, "ALERT_REPEAT": 3600, "ALERT_BATCH_SECONDS": 60,
              "ALERT_RETRY_SECONDS": 30, **overrides}
    return make_settings(data_dir, **values)


def checks(settings, sequence, start=T0, step=10.0):
    """Run observe once per entry of sequence (a list of condition lists), step seconds apart; lines told."""
    told = []
    for i, conditions in enumerate(sequence):
        told.extend(alerts.observe(settings, conditions, now=start + i * step, send=False))
    return told


def messages(settings):
    return alerts.read_outbox(settings)["messages"]


def test_a_blip_shorter_than_alert_after_sends_nothing(data_dir):
    settings = settings_for(data_dir)
    told = checks(settings, [[DOWN], [DOWN], [], [DOWN], [DOWN], [], []])
    assert told == [] and messages(settings) == []


def test_a_problem_that_holds_alerts_once_then_says_fine_again(data_dir):
    settings = settings_for(data_dir)
    told = checks(settings, [[DOWN]] * 3)
    assert told == ["The back end does not answer"]
    assert checks(settings, [[DOWN]] * 5, start=T0 + 30) == []  # held, but no reminder before ALERT_REPEAT
    # Gone for ALERT_AFTER checks in a row, as it had to hold before it alerted: then fine, once.
    assert checks(settings, [[], []], start=T0 + 100) == []
    assert checks(settings, [[]], start=T0 + 120) == ["Fine again: The back end does not answer"]
    assert checks(settings, [[]] * 3, start=T0 + 130) == []


def test_a_problem_that_only_pauses_is_not_fine_again(data_dir):
    # A failing restore trying again: for a check or two the problem is "restoring", then failing again.
    settings = settings_for(data_dir)
    told = checks(settings, [[DOWN]] * 3 + [[], [DOWN], [], [], [DOWN]] * 3)
    assert told == ["The back end does not answer"]


def test_reminders_come_every_alert_repeat_while_it_holds(data_dir):
    settings = settings_for(data_dir, ALERT_REPEAT=100)
    told = checks(settings, [[DOWN]] * 40, step=10)  # 400 s of checks: alert at 20 s, reminders at 120, 220, 320
    assert told[0] == "The back end does not answer"
    reminders = told[1:]
    assert len(reminders) == 3
    assert all(re.match(r"Still a problem since \d{4}-\d\d-\d\d \d\d:\d\d \S+: The back end does not answer", line)
               for line in reminders), reminders


def test_a_burst_within_the_batch_window_is_one_message(data_dir):
    settings = settings_for(data_dir, ALERT_AFTER=1, ALERT_BATCH_SECONDS=60)
    checks(settings, [[DOWN, FAILING]], start=T0)
    alerts.announce(settings, "warning", "2 users need a new PIN", now=T0 + 30, send=False)
    alerts.announce(settings, "info", "A wipe was restored: 2 users, 5 customers", now=T0 + 59, send=False)
    alerts.announce(settings, "info", "Later news", now=T0 + 61, send=False)
    first, second = messages(settings)
    assert len(first["lines"]) == 4 and second["lines"] == ["Later news"]
    severity, title, body = alerts.message_text(first)
    assert severity == "critical" and title == "sleepguard: problem (4 alerts)"
    assert "- Backups are failing" in body and "- 2 users need a new PIN" in body and "backup_status.py" in body


def test_nothing_secret_or_personal_reaches_the_outbox(data_dir):
    settings = make_settings(data_dir, "http://shop:S3cretPW@127.0.0.1:9", ALERT_URLS=f"{URL_A} {URL_B}",
                             ALERT_AFTER=1, BACKEND_MODE="snapshot", API_TOKEN="tok-5e1f-canary",
                             HEARTBEAT_URL="https://hc-ping.com/0b7c1f52-3d2a-4c11-9e0f-6a1b2c3d4e5f")
    nasty = ("Restore failed for Ama-Sofia@example.com (PIN: 482193) at http://shop:S3cretPW@127.0.0.1:9/api, "
             "token tok-5e1f-canary, topic mysecrettopic42, ping 0b7c1f52-3d2a-4c11-9e0f-6a1b2c3d4e5f")
    alerts.observe(settings, [("restore_failing", "critical", nasty)], now=T0, send=False)
    alerts.announce(settings, "warning", "owner7@example.com needs a new PIN 7731", now=T0 + 1, send=False)
    raw = (data_dir / alerts.OUTBOX_NAME).read_text()
    for secret in ("Ama-Sofia@example.com", "482193", "S3cretPW", "tok-5e1f-canary", "mysecrettopic42",
                   "0b7c1f52-3d2a-4c11-9e0f-6a1b2c3d4e5f", "owner7@example.com", "7731"):
        assert secret not in raw, secret
    assert "A***a@example.com" in raw and "o***7@example.com" in raw


def test_the_outbox_is_private_and_survives_a_restart(data_dir):
    settings = settings_for(data_dir, ALERT_AFTER=2)
    checks(settings, [[DOWN]])
    # A new process (a restarted service) carries the streak on from the file.
    assert checks(settings, [[DOWN]], start=T0 + 10) == ["The back end does not answer"]
    assert stat.S_IMODE(os.stat(data_dir / alerts.OUTBOX_NAME).st_mode) == 0o600


def test_a_check_that_changes_nothing_leaves_the_outbox_unwritten(data_dir):
    settings = settings_for(data_dir)
    checks(settings, [[]] * 3)
    assert not (data_dir / alerts.OUTBOX_NAME).exists()  # all quiet: nothing to keep
    checks(settings, [[DOWN]] * 3)  # held: one alert queued
    written = os.stat(data_dir / alerts.OUTBOX_NAME)
    # Still down, no reminder due yet: a day of such checks must not rewrite the file each round.
    checks(settings, [[DOWN]] * 20, start=T0 + 30)
    still = os.stat(data_dir / alerts.OUTBOX_NAME)
    assert (still.st_ino, still.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)


def test_nothing_is_recorded_without_alert_urls(data_dir):
    settings = make_settings(data_dir)
    assert checks(settings, [[DOWN]] * 5) == [] and alerts.announce(settings, "info", "x", send=False) is None
    assert not (data_dir / alerts.OUTBOX_NAME).exists()


def test_a_damaged_outbox_is_a_warning_not_a_stop(data_dir, caplog):
    settings = settings_for(data_dir, ALERT_AFTER=1)
    (data_dir / alerts.OUTBOX_NAME).write_text("{not json")
    assert checks(settings, [[DOWN]]) == []
    assert "alerts not recorded this check" in caplog.text and "move it aside" in caplog.text


def test_each_url_is_tracked_on_its_own(data_dir):
    settings = settings_for(data_dir, ALERT_AFTER=1, ALERT_BATCH_SECONDS=1)
    checks(settings, [[DOWN]])
    a, b = masking.url_key(URL_A), masking.url_key(URL_B)
    due = alerts.due_deliveries(settings, [a], now=T0 + 2)
    assert [d.target for d in due] == [a]
    alerts.record_delivery(settings, due[0], True, now=T0 + 3)
    assert messages(settings) == []  # delivered everywhere it had to go
    checks(settings, [[]], start=T0 + 10)  # "fine again" queued
    due = alerts.due_deliveries(settings, [a, b], now=T0 + 12)
    assert sorted(d.target for d in due) == sorted([a, b])
    alerts.record_delivery(settings, next(d for d in due if d.target == a), True, now=T0 + 13)
    alerts.record_delivery(settings, next(d for d in due if d.target == b), False, "failure: down", now=T0 + 13)
    assert alerts.due_deliveries(settings, [a, b], now=T0 + 14) == []  # b waits out its back-off
    (retry,) = alerts.due_deliveries(settings, [a, b], now=T0 + 13 + 30)
    assert retry.target == b and "Fine again" in retry.body
    # A URL taken out of the settings is no longer waited for.
    assert alerts.due_deliveries(settings, [a], now=T0 + 100) == [] and messages(settings) == []


def test_retries_back_off_doubling_up_to_an_hour(data_dir):
    settings = settings_for(data_dir, ALERT_RETRY_SECONDS=30)
    assert [alerts.retry_pause(settings, n) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert alerts.retry_pause(settings, 30) == 3600


def test_the_services_never_load_apprise():
    code = ("import sys; import sleepguard.alerts, sleepguard.heartbeat, sleepguard.masking; "
            "print('apprise' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "False", result.stderr


def test_a_bad_alert_url_is_named_by_its_place_never_shown(tmp_path):
    with pytest.raises(SettingsError) as caught:
        make_settings(tmp_path, ALERT_URLS="ntfy://fine-topic, s3cret-token-only")
    assert "entry 2 of 2" in str(caught.value) and "s3cret-token-only" not in str(caught.value)
