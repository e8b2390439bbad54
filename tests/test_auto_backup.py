"""The backup service as a real process: on its interval, on every save, never of a restarted back end, never torn."""

import re
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import requests

from fault_proxy import FaultProxy
from helpers import command_env, seed_shop
from service_helpers import (BackupWatcher, backup_document, log_text, seeded_view, shop_by_owner,
                             wait_for_figures, wait_for_log, wait_until)
from sleepguard.runner import read_state
from sleepguard.snapshot import parse_backup

BACKUP = "auto_backup_super_aggressive"
RESTORE = "auto_restore_service"


def add_customer(url, shop, name):
    """Save one more customer of the shop's first owner, as the app does, without telling anyone."""
    owner = next(iter(shop.values()))
    answer = requests.post(f"{url}/api/customers", params={"user_id": owner["id"]}, json={"name": name}, timeout=10)
    answer.raise_for_status()


def trigger(url):
    """Tell the back end something was saved, as the front end does after each save."""
    answer = requests.post(f"{url}/api/backup/trigger", timeout=10,
                           json={"user": "owner0@example.com", "action": "save", "timestamp": "2025-08-21T02:23:11"})
    answer.raise_for_status()


def backed_up_names(data_dir):
    """Every customer name in data_backup.json."""
    doc = backup_document(data_dir)
    return {c["name"] for u in doc["content"]["users"] for c in u["customers"]} if doc else set()


def suspect_files(data_dir):
    return sorted((data_dir / "auto_backups_super" / "suspect").glob("*.json"))


def test_backs_up_on_its_interval_and_not_more_often(services, demo_backend, data_dir):
    shop = seed_shop(demo_backend.url, users=2, customers=3)
    services.start(BACKUP, command_env(data_dir, demo_backend.url, BACKUP_INTERVAL="0.3", TRIGGER_POLL_INTERVAL="0.1"))
    found = wait_for_figures(data_dir, BACKUP, lambda f: f["backups_taken"] >= 4, 10, "four backups")
    assert found["good_count"] == 1 and found["unchanged_count"] >= 3
    assert found["suspect_count"] == found["failed_count"] == 0 and found["last_good_backup_at"]
    assert parse_backup((data_dir / "data_backup.json").read_bytes()).counts()["customers"] == 6

    add_customer(demo_backend.url, shop, "Saved without a trigger")
    wait_for_figures(data_dir, BACKUP, lambda f: f["good_count"] == 2, 5, "the next scheduled backup")
    assert "Saved without a trigger" in backed_up_names(data_dir)
    # A line is logged when its backup ends, and the interval runs from each backup's start: a slow backup
    # followed by a quick one logs two lines closer than the interval. So compare the starts.
    starts = [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
              - float(re.search(r" in (\d+\.\d+) s", line).group(1))
              for line in log_text(data_dir, BACKUP).splitlines() if line.endswith("[scheduled]")]
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
    # A backup every 0.1 s poll would be the bug; the slack is what happens between a backup's end and its line.
    assert len(gaps) >= 4 and min(gaps) >= 0.2, gaps


def test_a_save_is_backed_up_within_a_poll_even_when_the_interval_is_long(services, demo_backend, data_dir):
    shop = seed_shop(demo_backend.url, users=1, customers=2)
    services.start(BACKUP, command_env(data_dir, demo_backend.url, BACKUP_INTERVAL="30", TRIGGER_POLL_INTERVAL="0.1"))
    wait_for_figures(data_dir, BACKUP, lambda f: f["good_count"] == 1 and f["trigger_count"] == 0, 10, "a first backup")

    add_customer(demo_backend.url, shop, "Just saved")
    trigger(demo_backend.url)
    wait_until(lambda: "Just saved" in backed_up_names(data_dir), 5, "a backup after the trigger")
    found = wait_for_figures(data_dir, BACKUP, lambda f: f["good_count"] == 2, 5, "the figures of that backup")
    assert found["backups_taken"] == 2 and found["trigger_count"] == 1 and found["last_trigger_at"]
    assert log_text(data_dir, BACKUP).count("[the app saved something]") == 1


def test_a_counter_reset_wakes_the_restore_service_and_backs_up_nothing_of_the_empty_state(services, demo_backend,
                                                                                          data_dir):
    shop = seed_shop(demo_backend.url, users=2, customers=3)
    trigger(demo_backend.url)
    trigger(demo_backend.url)
    # Only the counter can make either service act: both intervals are far away.
    env = command_env(data_dir, demo_backend.url, BACKUP_INTERVAL="30", TRIGGER_POLL_INTERVAL="0.1",
                      RESTORE_CHECK_INTERVAL="30")
    services.start(BACKUP, env)
    wait_for_figures(data_dir, BACKUP, lambda f: f["good_count"] == 1 and f["trigger_count"] == 2, 10, "a backup")
    services.start(RESTORE, env)
    wait_until(lambda: read_state(data_dir, RESTORE), 10, "the restore service's first check")

    with BackupWatcher(data_dir) as watcher:
        demo_backend.sleep_now()
        found = wait_for_figures(data_dir, BACKUP, lambda f: f["restarts_seen"] == 1, 5, "the restart to be seen")
        assert found["wakes_sent"] == 1
        wait_for_log(data_dir, RESTORE, "woken by SIGUSR1", 5)
        wait_until(lambda: shop_by_owner(demo_backend.url) == seeded_view(shop), 10, "the restore")
        found = wait_for_figures(data_dir, BACKUP, lambda f: f["good_count"] == 2, 5, "the fresh backup it asks for")

    assert re.search(r"INFO back end restarted \(trigger count 2 -> 0\): woke the restore service; "
                     r"no backup of this state\n", log_text(data_dir, BACKUP))
    assert "[asked for a fresh backup]" in log_text(data_dir, BACKUP)
    assert found["backups_taken"] == 2 and found["suspect_count"] == 0 and suspect_files(data_dir) == []
    assert watcher.fewest_customers == 6 and watcher.problems == []


def test_a_wipe_never_reaches_data_backup_json_its_reads_are_held_aside(services, demo_backend, data_dir):
    seed_shop(demo_backend.url, users=2, customers=3)
    trigger(demo_backend.url)
    services.start(BACKUP, command_env(data_dir, demo_backend.url, BACKUP_INTERVAL="0.2", TRIGGER_POLL_INTERVAL="0.1"))
    wait_for_figures(data_dir, BACKUP, lambda f: f["good_count"] == 1 and f["trigger_count"] == 1, 10, "a backup")

    with BackupWatcher(data_dir) as watcher:
        demo_backend.sleep_now()
        found = wait_for_figures(data_dir, BACKUP, lambda f: f["suspect_count"] >= 2, 5, "wiped reads held as suspect")
    assert found["restarts_seen"] == 1 and found["wakes_sent"] == 0 and found["good_count"] == 1
    assert "the restore service is not running; no backup of this state" in log_text(data_dir, BACKUP)
    assert "backup HELD AS SUSPECT (wipe)" in log_text(data_dir, BACKUP)
    assert read_state(data_dir, BACKUP).last_outcome in ("suspect", "idle")
    assert len(suspect_files(data_dir)) == 1, "the same wiped read is held once"
    assert watcher.fewest_customers == 6 and watcher.problems == []


def all_files_verify(data_dir):
    """Every visible file under DATA_DIR is whole: backups verify their checksum, state files parse."""
    checked = 0
    for path in data_dir.rglob("*"):
        if not path.is_file() or path.name.startswith(".") or path.suffix not in (".json",):
            continue
        if path.name.endswith(".state.json"):
            read_state(data_dir, path.name[:-len(".state.json")]) or pytest.fail(f"{path.name} is unreadable")
        else:
            parse_backup(path.read_bytes())
        checked += 1
    return checked


def test_stopping_during_a_backup_leaves_only_whole_verified_files(services, demo_backend, data_dir):
    shop = seed_shop(demo_backend.url, users=16, customers=3)
    with FaultProxy(demo_backend.url) as proxy:
        # Slow customer lists make every read last a while, so the signals land mid-backup.
        proxy.set_fault("latency", path_prefix="/api/customers", latency=0.02)
        env = command_env(data_dir, proxy.url, BACKUP_INTERVAL="0.05", TRIGGER_POLL_INTERVAL="0.05",
                          BACKUP_WORKERS="2")
        for round_number, (signum, requests_into_read) in enumerate(
                [(signal.SIGTERM, 3), (signal.SIGTERM, 9), (signal.SIGTERM, 15), (signal.SIGKILL, 7)]):
            name = f"Saved in round {round_number}"
            add_customer(demo_backend.url, shop, name)
            seen = proxy.requests_seen
            service = services.start(BACKUP, env)
            wait_until(lambda: proxy.requests_seen >= seen + requests_into_read, 10, "a backup under way")
            assert services.stop(service, signum) == (0 if signum == signal.SIGTERM else -signal.SIGKILL)
            if signum == signal.SIGTERM:
                assert name in backed_up_names(data_dir), "the backup under way finished before the exit"
                assert not any(p.name.startswith(".") and p.suffix == ".tmp" for p in data_dir.rglob("*"))
                assert not (data_dir / f"{BACKUP}.pid").exists()
            assert all_files_verify(data_dir) >= 3
    assert parse_backup((data_dir / "data_backup.json").read_bytes()).counts()["customers"] >= 16 * 3 + 3


def test_a_restart_with_the_trigger_counter_still_at_zero_wakes_the_restore_service(services, demo_backend, data_dir):
    shop = seed_shop(demo_backend.url, users=2, customers=3)
    env = command_env(data_dir, demo_backend.url, BACKUP_INTERVAL="30", TRIGGER_POLL_INTERVAL="0.1",
                      RESTORE_CHECK_INTERVAL="30")
    # The restore service starts once the first backup is in, so no wake for that backup (a nudge) is under way:
    # its check could come after the sleep and restore before the backup service's probe looked.
    services.start(BACKUP, env)
    wait_for_figures(data_dir, BACKUP, lambda f: f["good_count"] == 1 and f["trigger_count"] == 0, 10, "a backup")
    services.start(RESTORE, env)
    wait_for_log(data_dir, RESTORE, "no wipe (", 10)

    demo_backend.sleep_now()
    # The counter was 0 and stays 0: only the user list shows the restart; the restore's own check is 30 s away.
    wait_until(lambda: shop_by_owner(demo_backend.url) == seeded_view(shop), 15, "the restore")
    # The backup service logs its round after the wake it sent: the restore can be done before that line is written.
    wait_for_log(data_dir, BACKUP, "back end restarted (none of the backed-up users are listed): woke the restore "
                                   "service", 5)
    assert read_state(data_dir, BACKUP).last_figures.restarts_seen == 1


def test_a_restart_that_was_no_wipe_never_blinds_the_next_sleep(services, demo_backend, data_dir):
    shop = seed_shop(demo_backend.url, users=2, customers=3)
    trigger(demo_backend.url)
    poll = 0.5
    # Neither the restore's own check nor a scheduled backup comes in this test's time: only the backup service's probe.
    env = command_env(data_dir, demo_backend.url, BACKUP_INTERVAL="120", TRIGGER_POLL_INTERVAL=str(poll),
                      RESTORE_CHECK_INTERVAL="120")
    services.start(RESTORE, env)
    services.start(BACKUP, env)
    wait_for_figures(data_dir, BACKUP, lambda f: f["good_count"] == 1 and f["trigger_count"] == 1, 10, "a backup")
    wait_until(lambda: read_state(data_dir, RESTORE), 10, "the restore service's first check")

    # The host restarts but the data is put back as it was, the trigger counter reset: a restart, no wipe.
    kept = demo_backend.state()
    demo_backend.admin("PUT", "/api/admin/snapshot", json={**kept, "backup_triggers": []}).raise_for_status()
    wait_for_figures(data_dir, BACKUP, lambda f: f["restarts_seen"] == 1 and f["trigger_count"] == 0, 5,
                     "the restart to be seen")
    # The check that wake started must be over before the sleep: the restore service's check at its start said
    # "no wipe (" too, so look only after the last wake-up in its log.
    wait_for_check_after_wake(data_dir, "no wipe (")

    demo_backend.sleep_now()
    slept = time.monotonic()
    wait_until(lambda: shop_by_owner(demo_backend.url) == seeded_view(shop), 15, "the restore")
    took = time.monotonic() - slept
    summary = wait_for_log(data_dir, RESTORE, "; verified complete", 10)
    restore_seconds = float(re.search(r"INFO restore: .* in (\d+\.\d) s; verified complete", summary).group(1))
    assert took <= poll + restore_seconds + 1.5, f"restored {took:.1f} s after the sleep"
    # The backup service logs its round after the wake it sent: the restore can be done before that line is written.
    wait_for_log(data_dir, BACKUP, "back end restarted (none of the backed-up users are listed): woke the restore "
                                   "service", 5)


def wait_for_check_after_wake(data_dir, text):
    """Wait until the restore service's log says text after its last wake-up."""
    def checked_after_wake():
        _, woken, after = log_text(data_dir, RESTORE).rpartition("woken by SIGUSR1")
        return woken and text in after
    wait_until(checked_after_wake, SOON, "the restore service's check after the wake")


PROBE_POLL = 2.0
# A few probe polls, and still long before the restore's own 120 s check: only the probe's wake can be that fast.
# Generous for a loaded machine (two suites at once missed 11 s); an idle one takes 2-5 s.
WITHIN_PROBES = 30
# A state file or log line that follows at once on an idle machine.
SOON = 15


def started_with_only_the_probe(services, demo_backend, data_dir):
    """A shop whose counter stays 0, backed up, with the services on: only the user probe can see a restart."""
    shop = seed_shop(demo_backend.url, users=2, customers=3)
    # Neither the restore's own check nor a scheduled backup comes in this test's time: only the backup service's probe.
    env = command_env(data_dir, demo_backend.url, BACKUP_INTERVAL="120", TRIGGER_POLL_INTERVAL=str(PROBE_POLL),
                      RESTORE_CHECK_INTERVAL="120")
    services.start(RESTORE, env)
    # Its PID file first, so the wake the first good backup sends always reaches it.
    wait_for_log(data_dir, RESTORE, f"{RESTORE} started", SOON)
    services.start(BACKUP, env)
    wait_for_figures(data_dir, BACKUP, lambda f: f["good_count"] == 1, SOON, "a backup")
    # The check that wake asks for must be over: it would take a test's change for its own. (Its start-up check
    # says "no wipe (unchanged)" too, and seeing that one let the next check restore a sleep before any probe.)
    wait_for_check_after_wake(data_dir, "no wipe (unchanged)")
    return shop


def test_a_sleep_right_after_a_restore_is_seen_by_the_next_probe(services, demo_backend, data_dir):
    shop = started_with_only_the_probe(services, demo_backend, data_dir)
    for sleep in (1, 2):
        goods = read_state(data_dir, BACKUP).last_figures.good_count
        demo_backend.sleep_now()
        # Within a few polls, long before the restore's own 120 s check: only the probe's wake can do that.
        wait_until(lambda: shop_by_owner(demo_backend.url) == seeded_view(shop), WITHIN_PROBES, f"restore {sleep}")
        # Its state is written after the round whose wake the restore may already have answered.
        wait_for_figures(data_dir, BACKUP, lambda f: f["restarts_seen"] >= sleep, SOON, f"restart {sleep} recorded")
        # The restore asks for a fresh backup of what it put back; the next sleep comes at once after it,
        # before any probe round saw the restored users listed.
        wait_for_figures(data_dir, BACKUP, lambda f: f["good_count"] > goods, SOON, "the backup of the restored data")


def test_a_restart_to_new_ids_that_was_no_wipe_never_blinds_the_next_sleep(services, demo_backend, data_dir):
    shop = started_with_only_the_probe(services, demo_backend, data_dir)

    # The host restarts holding the same shop under new ids (the demo started again, newly seeded): no wipe.
    state = demo_backend.state()
    new_ids = {user["id"]: str(uuid.uuid4()) for user in state["users"]}
    users = [{**user, "id": new_ids[user["id"]]} for user in state["users"]]
    customers = [{**customer, "id": str(uuid.uuid4()), "user_id": new_ids[customer["user_id"]]}
                 for customer in state["customers"]]
    demo_backend.admin("PUT", "/api/admin/snapshot", json={**state, "users": users, "customers": customers,
                                                           "backup_triggers": []}).raise_for_status()
    wait_for_figures(data_dir, BACKUP, lambda f: f["restarts_seen"] == 1, WITHIN_PROBES, "the restart to be seen")

    wait_for_check_after_wake(data_dir, "no wipe (changed)")

    demo_backend.sleep_now()
    # Within a few polls, long before the restore's own 120 s check: only the probe's wake can do that.
    wait_until(lambda: shop_by_owner(demo_backend.url) == seeded_view(shop), WITHIN_PROBES, "the restore")
    # Its state is written after the round whose wake the restore may already have answered.
    wait_for_figures(data_dir, BACKUP, lambda f: f["restarts_seen"] >= 2, SOON, "the second restart recorded")


def test_a_read_judged_a_wipe_is_a_restart_the_restore_service_hears_of(demo_backend, data_dir):
    # A woken round skips the probe, and a counter at 0 cannot drop: then only the read itself sees the wipe.
    from helpers import make_settings
    from sleepguard.auto_backup import AutoBackup
    from sleepguard.client import BackendClient
    seed_shop(demo_backend.url, users=2, customers=3)
    settings = make_settings(data_dir, demo_backend.url)
    with BackendClient(settings) as client:
        service = AutoBackup(settings, client)
        assert service.backup("scheduled").outcome == "good"
        demo_backend.sleep_now()
        answer = service.backup("asked for a fresh backup")
    assert answer.outcome == "suspect" and answer.figures.restarts_seen == 1
    # No restore service runs here: the wake waits to be delivered, as any other.
    assert "back end restarted (this read was judged a wipe): the restore service is not running" in answer.summary
    assert service.wake.pending


def test_a_read_the_host_restarted_during_is_one_restart_and_no_failed_backup(demo_backend, data_dir):
    # The computer slept mid-read (or the host restarted): the read's last look lists none of its users.
    from helpers import make_settings
    from sleepguard.auto_backup import AutoBackup
    from sleepguard.client import BackendClient
    from sleepguard.runner import ServiceContext
    seed_shop(demo_backend.url, users=2, customers=3)
    trigger(demo_backend.url)
    with FaultProxy(demo_backend.url) as proxy:
        settings = make_settings(data_dir, proxy.url)
        with BackendClient(settings) as client:
            service = AutoBackup(settings, client)
            assert service.decide(ServiceContext(BACKUP, settings)).outcome == "good"
            proxy.set_fault("hang", path_prefix="/api/customers")
            seen = proxy.requests_seen
            with ThreadPoolExecutor(1) as pool:
                reading = pool.submit(service.backup, "scheduled")
                # The read's status, its user list and a first customer list: it holds the users' ids now.
                wait_until(lambda: proxy.requests_seen >= seen + 3, 10, "the read under way")
                demo_backend.sleep_now()
                proxy.clear()
                answer = reading.result(30)
            assert answer.outcome == "restarted", answer.summary
            assert answer.summary == ("no backup: back end restarted (users vanished during the read): the restore "
                                      "service is not running [scheduled]")
            figures = answer.figures
            assert (figures.failed_count, figures.backups_taken, figures.restarts_seen) == (0, 1, 1)
            assert service.wake.pending
            # The trigger counter went 1 -> 0 with the same restart: the next round must not count it again.
            later = service.decide(ServiceContext(BACKUP, settings))
    assert later.outcome == "idle" and later.figures.restarts_seen == 1, later.summary
    assert not suspect_files(data_dir)


def test_a_wake_the_restore_service_was_not_there_for_is_sent_when_it_is(services, demo_backend, data_dir):
    seed_shop(demo_backend.url, users=2, customers=3)
    trigger(demo_backend.url)
    env = command_env(data_dir, demo_backend.url, BACKUP_INTERVAL="120", TRIGGER_POLL_INTERVAL="0.1",
                      RESTORE_CHECK_INTERVAL="120")
    services.start(BACKUP, env)
    wait_for_figures(data_dir, BACKUP, lambda f: f["good_count"] == 1, 10, "a backup")
    demo_backend.sleep_now()
    found = wait_for_figures(data_dir, BACKUP, lambda f: f["restarts_seen"] == 1, 5, "the restart to be seen")
    assert found["wakes_sent"] == 0
    services.start(RESTORE, env)
    wait_for_figures(data_dir, BACKUP, lambda f: f["wakes_sent"] == 1, 10, "the kept wake delivered")
    wait_for_log(data_dir, BACKUP, "woke the restore service at last (back end restarted (trigger count 1 -> 0))", 5)


def test_the_first_good_backup_wakes_the_restore_service_so_its_first_check_need_not_wait(services, demo_backend,
                                                                                          data_dir):
    seed_shop(demo_backend.url, users=2, customers=3)
    env = command_env(data_dir, demo_backend.url, BACKUP_INTERVAL="120", TRIGGER_POLL_INTERVAL="0.1",
                      RESTORE_CHECK_INTERVAL="120")
    services.start(RESTORE, env)
    wait_for_figures(data_dir, RESTORE, lambda f: f["last_check_at"], 10, "a check with no backup yet")
    assert read_state(data_dir, RESTORE).last_outcome == "no_backup"
    services.start(BACKUP, env)
    # Its next check would come in 120 s: the wake brings it now, so the status can say PROTECTED.
    wait_for_figures(data_dir, RESTORE, lambda f: f["last_verdict"] == "unchanged", 10, "the first real check")
    assert read_state(data_dir, BACKUP).last_figures.wakes_sent == 1


# --- off-site copies from the backup service ---

def _timed_good_backups(settings, url, user_id, count, first, environ=None):
    """count new good backups through the service's own round, one new customer before each; (service, seconds).

    environ: the settings for the uploader process, as a service passes its own environment on."""
    from sleepguard.auto_backup import AutoBackup
    from sleepguard.client import BackendClient
    took = []
    with BackendClient(settings) as client:
        service = AutoBackup(settings, client)
        service.shipper.environ = environ
        for n in range(first, first + count):
            requests.post(f"{url}/api/customers", params={"user_id": user_id}, json={"name": f"Customer {n}"},
                          timeout=10).raise_for_status()
            started = time.monotonic()
            answer = service.backup("scheduled")
            took.append(time.monotonic() - started)
            assert answer.outcome == "good", answer.summary
    return service, took


def test_new_good_backups_wait_in_order_while_the_store_is_down_and_never_slow_the_loop(demo_backend, data_dir,
                                                                                       moto_s3, tmp_path):
    from helpers import files_under, make_settings
    from offsite_helpers import PREFIX, bucket_objects, new_identity, offsite_settings
    from sleepguard.offsite import POINTER_NAME, chosen_copies, name_time
    from sleepguard.offsite_queue import queued_copies
    from sleepguard.store import BackupStore
    _identity, recipient = new_identity(tmp_path / "keys")
    owner = next(iter(seed_shop(demo_backend.url, users=1, customers=1).values()))
    plain_dir = tmp_path / "no-offsite"
    plain_dir.mkdir(mode=0o700)
    _service, without = _timed_good_backups(make_settings(plain_dir, demo_backend.url), demo_backend.url,
                                            owner["id"], 10, 0)
    with FaultProxy(moto_s3.url) as proxy:
        proxy.set_fault("503")
        settings = offsite_settings(data_dir, moto_s3, recipient, endpoint=proxy.url, BACKEND_URL=demo_backend.url)
        environ = command_env(data_dir, demo_backend.url, OFFSITE_URL=settings.offsite_url, OFFSITE_RECIPIENT=recipient,
                              OFFSITE_ENDPOINT_URL=proxy.url, RETRIES="1", RETRY_BACKOFF="0.01", READ_TIMEOUT="2")
        service, down = _timed_good_backups(settings, demo_backend.url, owner["id"], 10, 10, environ)
        if service.shipper.uploader is not None:
            service.shipper.uploader.wait(30)
        assert len(queued_copies(settings)) == 10 and bucket_objects(moto_s3) == {}
        local = files_under(data_dir / "auto_backups_super")
        proxy.clear()
        assert service.shipper.kick()
        assert service.shipper.uploader.wait(60) == 0
    # Loop rounds with the store down are no longer than without off-site copies at all (encrypting and
    # starting the uploader are milliseconds; the generous margin is for a loaded test machine).
    assert max(down) <= max(without) + 0.5, (down, without)
    assert files_under(data_dir / "auto_backups_super") == local and queued_copies(settings) == []
    names = chosen_copies(key.removeprefix(PREFIX + "/") for key in bucket_objects(moto_s3, PREFIX + "/"))
    backed_up = sorted(entry.created_at for entry in BackupStore(settings).list_backups() if entry.kind == "good")
    assert sorted(name_time(name) for name in names) == backed_up[-10:] and len(names) == 10
    # The uploader ran once with the store down (and said so), then once more to catch up.
    uploader_log = (data_dir / "offsite_uploader.log").read_text()
    assert "off-site upload stopped" in uploader_log
    uploaded = re.findall(r"off-site copy (\S+) uploaded", uploader_log)
    assert uploaded == sorted(names), "uploaded oldest first, each once"
    pointer = bucket_objects(moto_s3, f"{PREFIX}/{POINTER_NAME}")
    assert names[0].encode() in next(iter(pointer.values()))[0], "the pointer names the newest copy"
