"""Cold starts: the host takes up to 60 s to wake; timeouts outlast it, nothing is called lost, one wake, one restore.

The host falls asleep the way it does in life: the computer running sleepguard is suspended
(SIGSTOP of the three services) for longer than the host's idle limit, so the host stops and
forgets everything; on resume (SIGCONT) every service hits the cold start at once. The default
run scales the 60 s down to 3 s with READ_TIMEOUT 10; `pytest --long` runs the full 60 s with
the default READ_TIMEOUT of 90 s.
"""

import re
import signal
import threading
import time
from contextlib import contextmanager

import pytest
import requests

from helpers import NO_SETTINGS_FILE, command_env, seed_shop
from service_helpers import (BackupWatcher, Services, figures, log_text, seeded_view, shop_by_owner,
                             wait_for_figures, wait_until)
from sleepguard import services as registry
from sleepguard.runner import read_state
from sleepguard.settings import load_settings
from sleepguard.snapshot import parse_backup

KEEP_ALIVE, BACKUP, RESTORE = registry.KEEP_ALIVE.name, registry.AUTO_BACKUP.name, registry.AUTO_RESTORE.name
USERS, CUSTOMERS = 3, 3
# The free host's longest cold start.
LONGEST_COLD_START = 60


def test_the_default_timeouts_outlast_the_longest_cold_start():
    settings = load_settings(environ={}, env_file=NO_SETTINGS_FILE)
    assert settings.read_timeout > LONGEST_COLD_START, "a request held through a cold start would time out"
    # Even a read that times out once is tried again: the whole budget of one request outlasts it too.
    assert settings.read_timeout * (settings.retries + 1) > LONGEST_COLD_START
    assert settings.slow_answer_seconds < LONGEST_COLD_START < settings.read_timeout


@contextmanager
def awake(url, idle_sleep):
    """Keep the host awake while the services start, however slowly: it must not sleep before the first backup."""
    stop = threading.Event()

    def ping():
        while not stop.wait(idle_sleep / 4):
            requests.get(f"{url}/api/health", timeout=10)

    thread = threading.Thread(target=ping, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


@pytest.mark.parametrize("cold_start, idle_sleep, settings", [
    pytest.param(3, 1.0, {"READ_TIMEOUT": "10", "SLOW_ANSWER_SECONDS": "1.5"}, id="3s"),
    pytest.param(LONGEST_COLD_START, 1.0, {"READ_TIMEOUT": "90", "SLOW_ANSWER_SECONDS": "5"}, id="60s",
                 marks=pytest.mark.long),
])
def test_a_wake_after_the_computer_slept_is_one_restore_and_nothing_is_lost(start_demo, data_dir, cold_start,
                                                                           idle_sleep, settings):
    demo = start_demo("--idle-sleep", str(idle_sleep), "--cold-start", str(cold_start))
    shop = seed_shop(demo.url, users=USERS, customers=CUSTOMERS, pin_of=lambda i: f"7305{i}8{i}91")
    # One saved order: the app's trigger counter is 1 now, and a wake resets it to 0.
    requests.post(f"{demo.url}/api/backup/trigger", json={"user": "owner0@example.com", "action": "save",
                                                           "timestamp": "2025-08-21T02:23:11"}, timeout=10)
    env = command_env(data_dir, demo.url, KEEP_ALIVE_INTERVAL="0.3", TRIGGER_POLL_INTERVAL="0.3",
                      BACKUP_INTERVAL="0.5", RESTORE_CHECK_INTERVAL="0.5", **settings)
    deadline = cold_start + 15
    with Services() as services:
        with awake(demo.url, idle_sleep):
            processes = [services.start(service, env) for service in (KEEP_ALIVE, BACKUP, RESTORE)]
            wait_for_figures(data_dir, BACKUP, lambda f: f["good_count"] >= 1 and f["trigger_count"] == 1, 15,
                             "a good backup and the trigger counter")
            wait_for_figures(data_dir, RESTORE, lambda f: f["last_verdict"] == "unchanged", 15,
                             "a check finding no wipe")
            wait_for_figures(data_dir, KEEP_ALIVE, lambda f: f["pings_ok"] >= 2, 15, "two pings")

        with BackupWatcher(data_dir) as watcher:
            for process in processes:
                process.send_signal(signal.SIGSTOP)
            try:
                # The computer is asleep: no request reaches the host for longer than its idle limit.
                time.sleep(idle_sleep + 0.5)
            finally:
                for process in processes:
                    process.send_signal(signal.SIGCONT)
            woke_at = time.monotonic()
            found = wait_for_figures(data_dir, RESTORE, lambda f: f["restores"] >= 1, deadline, "the restore")
            restored_after = time.monotonic() - woke_at
            wait_until(lambda: shop_by_owner(demo.url) == seeded_view(shop), 10, "every customer back")
            # A few more checks, with the wake-ups of the keep-alive and the backup service handled: no second restore.
            iterations = read_state(data_dir, RESTORE).iterations
            wait_until(lambda: read_state(data_dir, RESTORE).iterations >= iterations + 3, deadline,
                       "three more checks")
            wait_for_figures(data_dir, BACKUP, lambda f: f["good_count"] >= 2, deadline,
                             "a backup of the restored data")

    restore, backup, keep_alive = figures(data_dir, RESTORE), figures(data_dir, BACKUP), figures(data_dir, KEEP_ALIVE)
    assert restored_after >= cold_start * 0.9, f"restored {restored_after:.1f} s after the wake: no cold start was paid"
    # One wake, one restore.
    assert restore["wipes_seen"] == 1 and restore["restores"] == 1 and restore["failed_restores"] == 0, restore
    assert log_text(data_dir, RESTORE).count("wipe detected") == 1
    assert found["last_restore_complete"] is True
    # Nothing was called lost or unknown while the host was waking: every request waited it out.
    assert restore["unknown_reads"] == 0, restore
    assert keep_alive["pings_failed"] == 0 and keep_alive["wakes_sent"] >= 1, keep_alive
    assert re.search(r"back end answered slowly \(\d+\.\d\d s, a cold start\?\); woke the restore service",
                     log_text(data_dir, KEEP_ALIVE))
    assert backup["failed_count"] == 0 and backup["restarts_seen"] == 1, backup
    # No wiped or half-restored read was ever promoted: data_backup.json and every good history file hold it all.
    assert watcher.fewest_customers == USERS * CUSTOMERS and watcher.problems == []
    for path in sorted((data_dir / "auto_backups_super").glob("backup-*.json")):
        assert parse_backup(path.read_bytes()).counts()["customers"] == USERS * CUSTOMERS, path.name
    assert shop_by_owner(demo.url) == seeded_view(shop)
