"""The restore service as a real process: a wipe comes back at once and once, anything doubtful is left alone."""

import re
import signal

import pytest
import requests

from conftest import DEMO_TOKEN
from fault_proxy import FaultProxy
from helpers import backup_now, command_env, make_settings, seed_shop
from service_helpers import (LOG_NAMES, BackupWatcher, figures, log_text, seeded_view, shop_by_owner,
                             wait_for_figures, wait_for_log, wait_until)
from sleepguard.atomicfile import write_json_atomic
from sleepguard.processes import signal_service
from sleepguard.pins import read_restored_pins
from sleepguard.runner import read_state
from sleepguard.snapshot import Snapshot, utc_now_iso

KEEP_ALIVE = "keep_alive_super_aggressive"
BACKUP = "auto_backup_super_aggressive"
RESTORE = "auto_restore_service"
# Long, odd PINs: a short one could turn up in a log by chance (a time, a port) and hide a real leak.
SEEDED_PINS = lambda i: f"5820391{i}"  # noqa: E731


def customer_contents(state):
    """{(owner e-mail, customer name): (money given, total spent, orders)} from the admin state."""
    email_of = {user["id"]: user["email"] for user in state["users"]}
    return {(email_of[c["user_id"]], c["name"]): (c["money_given"], c["total_spent"], c["orders"])
            for c in state["customers"]}


def sorted_state(state):
    """The admin state with its lists in one order, so equal content compares equal."""
    return {key: sorted(value, key=lambda record: record["id"]) for key, value in state.items()}


def signs_in(url, email, pin):
    answer = requests.post(f"{url}/api/users/signin", json={"email": email, "pin": pin}, timeout=10)
    return answer.status_code == 200


def assert_no_secret_in_logs(data_dir, secrets):
    """No log line and no state file of any service holds a token or a PIN."""
    texts = [log_text(data_dir, service) for service in LOG_NAMES]
    texts += [path.read_text() for path in data_dir.glob("*.state.json")]
    assert any(texts)
    for secret in secrets:
        assert secret and not any(secret in text for text in texts), "a secret reached a log or state file"


def backed_up_shop(demo, data_dir, users=2, customers=3, url=None):
    """Seed the demo and take a good backup in-process (through url, the one the services will watch); return the shop."""
    shop = seed_shop(demo.url, users=users, customers=customers, pin_of=SEEDED_PINS)
    assert backup_now(make_settings(data_dir, url or demo.url)).kind == "good"
    return shop


def test_a_wipe_is_restored_within_a_check_interval_each_customer_under_its_owner(services, demo_backend, data_dir):
    shop = seed_shop(demo_backend.url, users=3, customers=4, pin_of=SEEDED_PINS)
    env = command_env(data_dir, demo_backend.url, BACKUP_INTERVAL="0.3", TRIGGER_POLL_INTERVAL="0.1",
                      RESTORE_CHECK_INTERVAL="0.5", KEEP_ALIVE_INTERVAL="0.2", API_TOKEN=DEMO_TOKEN)
    for service in (KEEP_ALIVE, BACKUP, RESTORE):
        services.start(service, env)
    wait_for_figures(data_dir, BACKUP, lambda f: f["good_count"] >= 1, 10, "a good backup")
    wait_for_figures(data_dir, RESTORE, lambda f: f["last_verdict"] == "unchanged", 10, "a check finding no wipe")
    before = customer_contents(demo_backend.state())

    with BackupWatcher(data_dir) as watcher:
        demo_backend.sleep_now()
        wait_until(lambda: shop_by_owner(demo_backend.url) == seeded_view(shop), 5, "the restore")
        found = wait_for_figures(data_dir, RESTORE, lambda f: f["restores"] == 1, 5, "the restore's figures")
        # A few checks later: still one restore for the one wipe.
        iterations = read_state(data_dir, RESTORE).iterations
        wait_until(lambda: read_state(data_dir, RESTORE).iterations >= iterations + 2, 5, "two more checks")

    assert figures(data_dir, RESTORE)["restores"] == 1 and figures(data_dir, RESTORE)["wipes_seen"] == 1
    assert customer_contents(demo_backend.state()) == before
    assert found["last_restore_complete"] and found["users_needing_pin"] == sorted(shop)
    assert re.search(r"INFO restore: 3 users, 12 customers created, 0 failed in \d+\.\d s; verified complete; "
                     r"3 users need their new PIN: owner0@example.com, owner1@example.com, owner2@example.com",
                     log_text(data_dir, RESTORE))
    assert re.search(r"INFO restore: .*; verified complete; .*; first owner \(o\*\*\*\d@example\.com\) back after "
                     r"\d+\.\d s", log_text(data_dir, RESTORE))
    new_pins = read_restored_pins(data_dir)
    assert sorted(new_pins) == sorted(shop) and all(signs_in(demo_backend.url, e, p) for e, p in new_pins.items())
    assert watcher.fewest_customers == 12 and watcher.problems == []
    assert_no_secret_in_logs(data_dir, [DEMO_TOKEN, *(owner["pin"] for owner in shop.values()), *new_pins.values()])


def test_what_the_last_restore_did_outlives_a_restart_of_the_service(services, demo_backend, data_dir):
    backed_up_shop(demo_backend, data_dir)
    demo_backend.sleep_now()
    env = command_env(data_dir, demo_backend.url, RESTORE_CHECK_INTERVAL="0.3")
    first = services.start(RESTORE, env)
    restored = wait_for_figures(data_dir, RESTORE, lambda f: f["restores"] == 1, 15, "the restore")
    assert services.stop(first) == 0
    second = services.start(RESTORE, env)
    wait_until(lambda: read_state(data_dir, RESTORE).pid == second.pid, 15, "a check by the restarted service")
    again = figures(data_dir, RESTORE)
    # "changed": the restored users have new ids, and no backup service runs here to take a fresh backup of them.
    assert again["last_verdict"] == "changed" and again["restores"] == 0 and again["last_restore_summary"].startswith("restore: 2 users, 6 customers created")
    kept = ("last_restore_at", "last_restore_complete", "last_restore_summary", "users_needing_pin")
    assert [again[name] for name in kept] == [restored[name] for name in kept]
    # A service watching another back end starts with no restore of its own to tell of.
    from sleepguard.auto_restore import AutoRestore
    other = AutoRestore(make_settings(data_dir, "http://127.0.0.1:9"), client=None)
    assert other.figures.last_restore_at is None and other.figures.last_restore_summary is None


def test_snapshot_mode_puts_the_exact_state_back_and_never_logs_the_token(services, demo_backend, data_dir):
    seed_shop(demo_backend.url, users=2, customers=2, pin_of=SEEDED_PINS)
    before = demo_backend.state()
    env = command_env(data_dir, demo_backend.url, BACKUP_INTERVAL="0.3", TRIGGER_POLL_INTERVAL="0.1",
                      RESTORE_CHECK_INTERVAL="0.3", BACKEND_MODE="snapshot", API_TOKEN=DEMO_TOKEN)
    services.start(BACKUP, env)
    wait_for_figures(data_dir, BACKUP, lambda f: f["good_count"] >= 1, 10, "a good backup")
    services.start(RESTORE, env)

    demo_backend.sleep_now()
    wait_for_figures(data_dir, RESTORE, lambda f: f["restores"] == 1, 5, "the restore")
    assert sorted_state(demo_backend.state()) == sorted_state(before)
    assert_no_secret_in_logs(data_dir, [DEMO_TOKEN])


def test_woken_by_the_keep_alive_it_restores_right_after_the_back_end_answers(services, demo_backend, data_dir):
    with FaultProxy(demo_backend.url) as proxy:
        # Backed up through the proxy: a backup restores on its own only into the back end it came from.
        shop = backed_up_shop(demo_backend, data_dir, url=proxy.url)
        env = command_env(data_dir, proxy.url, RESTORE_CHECK_INTERVAL="30", KEEP_ALIVE_INTERVAL="0.2")
        services.start(RESTORE, env)
        wait_for_figures(data_dir, RESTORE, lambda f: f["last_verdict"] == "unchanged", 10, "a first check")
        services.start(KEEP_ALIVE, env)
        wait_for_figures(data_dir, KEEP_ALIVE, lambda f: f["pings_ok"] >= 1, 10, "a first ping")

        # The host restarts: a few seconds of 502 pages, then it answers, empty.
        proxy.set_fault("502", seconds=1.0)
        demo_backend.sleep_now()
        wait_for_figures(data_dir, KEEP_ALIVE, lambda f: f["consecutive_failures"] >= 1, 5, "the outage")
        # Its own next check is 30 s away: only the wake can bring the data back this soon.
        wait_until(lambda: shop_by_owner(demo_backend.url) == seeded_view(shop), 15,
                   "the restore (its own check is 30 s away)")
        # The data is back a moment before the service's verifying read through the proxy ends.
        restore_log = wait_for_log(data_dir, RESTORE, "verified complete", 10)

    assert "woke the restore service" in log_text(data_dir, KEEP_ALIVE)
    assert restore_log.index("woken by SIGUSR1") < restore_log.index("verified complete")
    assert figures(data_dir, RESTORE)["restores"] == 1


@pytest.mark.parametrize("kind, reason", [("502", "host answered 502"), ("not_json", "answer is not JSON"),
                                          ("truncated", "answer truncated"), ("hang", "timed out after 0.3 s")])
def test_a_back_end_in_an_unknown_state_is_never_restored_into(services, demo_backend, data_dir, kind, reason):
    backed_up_shop(demo_backend, data_dir)
    demo_backend.sleep_now()
    with FaultProxy(demo_backend.url) as proxy:
        proxy.set_fault(kind)
        services.start(RESTORE, command_env(data_dir, proxy.url, RESTORE_CHECK_INTERVAL="0.1", READ_TIMEOUT="0.3",
                                            RETRIES="0"))
        wait_for_figures(data_dir, RESTORE, lambda f: f["unknown_reads"] >= 2, 10, "two unknown reads")
    log = log_text(data_dir, RESTORE)
    assert re.search(rf"INFO back end state unknown: GET /api/users: {reason}.*; no restore\n", log), log
    assert figures(data_dir, RESTORE)["wipes_seen"] == 0 and "restore:" not in log
    assert demo_backend.state()["users"] == []


def test_a_back_end_that_is_down_is_never_restored_into(services, demo_backend, data_dir):
    backed_up_shop(demo_backend, data_dir)
    proxy = FaultProxy(demo_backend.url).start()
    proxy.stop()  # nothing listens at its address any more
    services.start(RESTORE, command_env(data_dir, proxy.url, RESTORE_CHECK_INTERVAL="0.1"))
    wait_for_figures(data_dir, RESTORE, lambda f: f["unknown_reads"] >= 2, 10, "two unknown reads")
    assert "back end state unknown: GET /api/users: connection refused; no restore" in log_text(data_dir, RESTORE)


def test_a_large_drop_is_held_for_the_owner_not_restored(services, demo_backend, data_dir):
    shop = backed_up_shop(demo_backend, data_dir)
    owner = shop["owner0@example.com"]
    for customer in owner["customers"].values():
        requests.delete(f"{demo_backend.url}/api/customers/{customer['id']}", params={"user_id": owner["id"]},
                        timeout=10).raise_for_status()
    services.start(RESTORE, command_env(data_dir, demo_backend.url, RESTORE_CHECK_INTERVAL="0.1"))
    found = wait_for_figures(data_dir, RESTORE, lambda f: f["large_drops_held"] >= 2, 10, "two checks")
    assert found["last_verdict"] == "large_drop" and found["wipes_seen"] == found["restores"] == 0
    assert read_state(data_dir, RESTORE).last_outcome == "held"
    assert "large drop held for the owner, not restored" in log_text(data_dir, RESTORE)
    assert shop_by_owner(demo_backend.url)["owner0@example.com"] == []


def test_a_restore_that_cannot_complete_backs_off_instead_of_looping(services, demo_backend, data_dir):
    # The back end refuses the second user's e-mail (422): every restore stays incomplete.
    users = [{"id": "u-good", "email": "good@example.com"}, {"id": "u-bad", "email": "nobody@localhost"}]
    customers = {"u-good": [{"id": "c-1", "name": "Kept", "money_given": 1.0, "total_spent": 0.0, "orders": []}]}
    backup = Snapshot.from_api(users, customers, {"created_at": utc_now_iso(), "mode": "babs10"})
    write_json_atomic(data_dir / "data_backup.json", backup.to_document())
    services.start(RESTORE, command_env(data_dir, demo_backend.url, RESTORE_CHECK_INTERVAL="0.05"))

    wait_until(lambda: getattr(read_state(data_dir, RESTORE), "iterations", 0) >= 24, 10, "24 iterations")
    found = figures(data_dir, RESTORE)
    # Tries at checks 1, 3, 6, 11, 20 (skipping 1, 2, 4, 8 ...); a hot loop would have tried about 24 times.
    assert 4 <= found["failed_restores"] <= 6, found
    assert found["restores"] == 0 and found["restore_failures_in_a_row"] == found["failed_restores"]
    log = log_text(data_dir, RESTORE)
    assert re.search(r"NOT complete: user nobody@localhost: .*; still missing user nobody@localhost.*; backing off: skipping the next 4 checks "
                     r"\(0\.2 s\)\n", log)
    assert "backing off after 3 failed restores in a row: check skipped" in log
    assert shop_by_owner(demo_backend.url) == {"good@example.com": ["Kept"]}, "merged, never duplicated"


def test_a_restore_reads_the_back_end_twice_the_read_it_decided_on_and_the_verifying_one(
        services, demo_backend, data_dir):
    shop = backed_up_shop(demo_backend, data_dir)
    services.start(RESTORE, command_env(data_dir, demo_backend.url, RESTORE_CHECK_INTERVAL="30", LOG_LEVEL="DEBUG"))
    wait_for_log(data_dir, RESTORE, "no wipe (unchanged)", 10)
    demo_backend.sleep_now()
    assert signal_service(data_dir, RESTORE, signal.SIGUSR1)
    wait_until(lambda: shop_by_owner(demo_backend.url) == seeded_view(shop), 10, "the restore")
    log = wait_for_log(data_dir, RESTORE, "; verified complete", 10)
    restore_round = log[log.index("woken by SIGUSR1"):log.index("; verified complete")]
    assert restore_round.count("read the back end (babs10 mode)") == 2, restore_round


def test_the_service_skips_its_check_while_another_restore_runs_and_restores_once_it_ended(
        services, demo_backend, data_dir, restore_held_elsewhere):
    shop = backed_up_shop(demo_backend, data_dir)
    demo_backend.sleep_now()
    services.start(RESTORE, command_env(data_dir, demo_backend.url, RESTORE_CHECK_INTERVAL="0.1"))
    wait_for_log(data_dir, RESTORE, f"a restore is already running (PID {restore_held_elsewhere.pid}, 37 of 200 "
                                    "users): check skipped", 10, count=2)
    assert figures(data_dir, RESTORE)["wipes_seen"] == 0 and demo_backend.state()["users"] == []
    restore_held_elsewhere.stdin.close()
    restore_held_elsewhere.wait(10)
    wait_for_figures(data_dir, RESTORE, lambda f: f["restores"] == 1, 15, "the restore once the other ended")
    assert shop_by_owner(demo_backend.url) == seeded_view(shop)


def test_a_wipe_restored_is_one_alert_with_the_counts_and_who_needs_a_pin_never_a_pin(services, demo_backend,
                                                                                      data_dir, receiver):
    shop = backed_up_shop(demo_backend, data_dir, users=2, customers=3)
    env = command_env(data_dir, demo_backend.url, BACKUP_INTERVAL="0.3", TRIGGER_POLL_INTERVAL="0.1",
                      RESTORE_CHECK_INTERVAL="0.3", KEEP_ALIVE_INTERVAL="0.2", ALERT_URLS=receiver.apprise_url,
                      ALERT_AFTER="2", ALERT_BATCH_SECONDS="0.2", ALERT_RETRY_SECONDS="0.2")
    for service in (KEEP_ALIVE, BACKUP, RESTORE):
        services.start(service, env)
    wait_for_figures(data_dir, RESTORE, lambda f: f["last_verdict"] == "unchanged", 10, "a first check")

    demo_backend.sleep_now()
    wait_for_figures(data_dir, RESTORE, lambda f: f["restores"] == 1, 10, "the restore")

    def restored():
        return [n["message"] for n in receiver.notifications() if "sleepguard restored it" in n["message"]]
    wait_until(restored, 10, "the 'restored' alert")
    # A few checks later: still one message for the one wipe.
    iterations = read_state(data_dir, RESTORE).iterations
    wait_until(lambda: read_state(data_dir, RESTORE).iterations >= iterations + 3, 10, "three more checks")
    (message,) = restored()
    assert "The back end was wiped and sleepguard restored it: 2 users and 6 customers are back." in message
    assert "2 users need the new PIN the restore gave them: o***0@example.com, o***1@example.com." in message
    assert f"cat {data_dir / 'restored_pins.json'}" in message
    everything = str(receiver.received())
    pins = [*read_restored_pins(data_dir).values(), *(owner["pin"] for owner in shop.values())]
    assert not any(secret in everything for secret in [*pins, *shop]), "a PIN or a full e-mail left the machine"


def test_a_foreign_back_end_is_recorded_for_the_verdict_and_nothing_is_written(start_demo, data_dir):
    from sleepguard.auto_restore import AutoRestore
    from sleepguard.client import BackendClient
    from sleepguard.runner import ServiceContext

    first, other = start_demo(), start_demo()
    seed_shop(first.url, users=2, customers=2, prefix="first")
    assert backup_now(make_settings(data_dir, first.url)).kind == "good"
    seed_shop(other.url, users=1, customers=2, prefix="other")
    before = other.state()
    settings = make_settings(data_dir, other.url)
    with BackendClient(settings) as client:
        answer = AutoRestore(settings, client).run_once(ServiceContext("auto_restore_service", settings))
    assert answer.outcome == "foreign" and answer.warn
    assert "manual_backup.py --accept-current" in answer.summary and first.url in answer.summary
    found = answer.figures
    assert found.last_verdict == "foreign" and found.foreign_held == 1 and found.wipes_seen == found.restores == 0
    assert found.backend_url == other.url and "not from the back end watched now" in found.last_reason
    assert len(found.missing_users) == 2 and other.state() == before
