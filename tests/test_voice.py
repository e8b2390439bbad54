"""The watcher's voice: verdict reasons as alerts, the verdict's change said once, and the three services as
real processes telling a real receiver (apprise json://) and a heartbeat receiver about the back end."""

import re
import time

import psutil
import pytest

from helpers import command_env, make_settings, seed_shop
from service_helpers import figures, wait_for_figures, wait_until
from sleepguard import alerts, verdict as verdicts
from sleepguard.runner import read_state
from sleepguard.voice import VerdictChange, conditions
from test_verdict import SERVICES, all_well

KEEP_ALIVE, BACKUP, RESTORE = SERVICES
CHECK_ID = "5d1c0e2a-7b3f-4a61-8c9d-0e1f2a3b4c5d"
DOWN_WORDS = "The back end does not answer"
UP_WORDS = "Fine again: The back end does not answer"
DEADLINE = 20
BACKUPS_FAILED = r"The last (\d+ backups|backup) failed: "


def lines_of(status):
    return {key: (severity, text) for key, severity, text in conditions(verdicts.judge(status))}


def test_each_reason_is_one_condition_in_words_with_the_command_that_fixes_it():
    services = [{"service": KEEP_ALIVE, "state": "running"}, {"service": BACKUP, "state": "stale"},
                {"service": RESTORE, "state": "stopped"}]
    found = lines_of(all_well(services=services, last_check={"verdict": "foreign", "reason": "older records"}))
    assert set(found) == {f"service_down:{BACKUP}", f"service_down:{RESTORE}", "backend_foreign"}
    assert found["backend_foreign"][0] == "critical" and "manual_backup.py --accept-current" in found["backend_foreign"][1]
    held = lines_of(all_well(last_check={"verdict": "large_drop", "emptied_owners": ["ama@example.com"]}))
    assert held["large_drop_held"][0] == "warning" and "--accept-shrink" in held["large_drop_held"][1]
    failing = lines_of(all_well(restore={"running": False, "complete": False, "what": "2 customers failed"}))
    assert "Putting the data back failed: 2 customers failed" in failing["restore_failing"][1]


def test_a_full_or_read_only_disk_in_a_backup_is_named_disk_trouble():
    for why in ("[Errno 28] No space left on device: 'history'", "[Errno 30] Read-only file system: 'x'",
                "[Errno 27] File too large"):
        (severity, text), = lines_of(all_well(last_backup={"kind": "failed", "why": why})).values()
        assert severity == "critical" and text.startswith("Disk trouble on the watcher: backups cannot be written")
    (_, text), = lines_of(all_well(last_backup={"kind": "failed", "why": "connection refused"})).values()
    assert "Disk trouble" not in text and "connection refused" in text


def test_users_waiting_for_a_pin_reach_the_outbox_masked_and_counted(data_dir):
    settings = make_settings(data_dir, ALERT_URLS="json://127.0.0.1:9/", ALERT_AFTER=2)
    found = conditions(verdicts.judge(all_well(pins_to_hand_out=["ama-sofia@example.com", "bo@example.com"])))
    told = [line for now in (1.0, 2.0) for line in alerts.observe(settings, found, now=now, send=False)]
    assert len(told) == 1 and told[0].startswith("2 users need the new PIN the restore gave them")
    assert "a***a@example.com" in told[0] and "ama-sofia@" not in told[0] and "restored_pins.json" in told[0]


@pytest.mark.parametrize("codes, said", [
    # Settles silently on the first verdict, then says a change once it held 2 rounds; a 1-round blip is silent.
    ([0, 0, 2, 0, 0], []),
    ([0, 0, 2, 2, 2], [("critical", "Worse now: the shop's data is NOT PROTECTED (it was PROTECTED).")]),
    ([0, 0, 2, 2, 0, 0], [("critical", "Worse now: the shop's data is NOT PROTECTED (it was PROTECTED)."),
                          ("info", "Better now: the shop's data is PROTECTED (it was NOT PROTECTED).")]),
    ([2, 2, 1, 1], [("info", "Better now: the shop's data is WARNING (it was NOT PROTECTED).")]),
])
def test_the_verdict_getting_worse_or_better_is_said_once_after_alert_after_rounds(codes, said):
    change = VerdictChange(alert_after=2)
    lines = [change.line(verdicts.Verdict(code)) for code in codes]
    assert [line for line in lines if line] == said


# --- the services as real processes ---

def start_watching(services, demo, proxy, data_dir, urls=(), **overrides):
    """The three services through the proxy with short intervals, alerts after 2 rounds; a good backup first."""
    seed_shop(demo.url, users=2, customers=2)
    values = {"KEEP_ALIVE_INTERVAL": "0.3", "BACKUP_INTERVAL": "0.5", "TRIGGER_POLL_INTERVAL": "0.2",
              "RESTORE_CHECK_INTERVAL": "0.3", "RETRIES": "0", "ALERT_AFTER": "2", "ALERT_URLS": " ".join(urls),
              "ALERT_BATCH_SECONDS": "0.2", "ALERT_RETRY_SECONDS": "0.2", "ALERT_TIMEOUT": "5", **overrides}
    env = command_env(data_dir, proxy.url, **values)
    for service in SERVICES:
        services.start(service, env)
    wait_for_figures(data_dir, BACKUP, lambda f: f["good_count"] >= 1, DEADLINE, "a good backup")
    # The verdict with the backup in place held ALERT_AFTER rounds: the keep-alive has settled on it.
    rounds = wait_for_figures(data_dir, KEEP_ALIVE, lambda f: f["verdict"], DEADLINE, "a first verdict") and \
        read_state(data_dir, KEEP_ALIVE).iterations
    wait_until(lambda: read_state(data_dir, KEEP_ALIVE).iterations >= rounds + 3, DEADLINE, "a settled verdict")
    return env


def messages(receiver):
    return [note["message"] for note in receiver.notifications()]


def saying(receiver, words, without=None):
    return [m for m in messages(receiver) if words in m and (without is None or without not in m)]


def down_then_up(proxy, data_dir, receivers):
    """The back end's health fails until each receiver has the 'down' alert, then answers until the 'up'."""
    proxy.set_fault("502", path_prefix="/api/health")
    for receiver in receivers:
        wait_until(lambda: saying(receiver, DOWN_WORDS, without="Fine again"), DEADLINE, "the 'down' alert")
    proxy.clear()
    for receiver in receivers:
        wait_until(lambda: saying(receiver, UP_WORDS), DEADLINE, "the 'up' alert")


def test_back_end_down_for_alert_after_rounds_is_one_down_message_then_one_up(services, demo_backend, proxy,
                                                                             data_dir, receiver):
    start_watching(services, demo_backend, proxy, data_dir, [receiver.apprise_url])
    down_then_up(proxy, data_dir, [receiver])
    # A few rounds more: nothing is said twice.
    rounds = read_state(data_dir, KEEP_ALIVE).iterations
    wait_until(lambda: read_state(data_dir, KEEP_ALIVE).iterations >= rounds + 4, DEADLINE, "four more rounds")
    (down,) = saying(receiver, DOWN_WORDS, without="Fine again")
    (up,) = saying(receiver, UP_WORDS)
    assert "host answered 502" in down and "Fix: check the host" in down
    assert "Worse now: the shop's data is NOT PROTECTED" in down


def test_a_blip_shorter_than_alert_after_sends_nothing(services, demo_backend, proxy, data_dir, receiver):
    # ALERT_AFTER=3; RETRIES=0, so the next two health requests failing fail two rounds in a row.
    start_watching(services, demo_backend, proxy, data_dir, [receiver.apprise_url], ALERT_AFTER="3")
    failed = figures(data_dir, KEEP_ALIVE)["pings_failed"]
    proxy.set_fault("502", path_prefix="/api/health", count=2)
    wait_for_figures(data_dir, KEEP_ALIVE, lambda f: f["pings_failed"] == failed + 2, DEADLINE, "two failed pings")
    rounds = read_state(data_dir, KEEP_ALIVE).iterations
    wait_until(lambda: read_state(data_dir, KEEP_ALIVE).iterations >= rounds + 6, DEADLINE, "six more rounds")
    assert figures(data_dir, KEEP_ALIVE)["pings_failed"] == failed + 2
    assert not any(DOWN_WORDS in m or "Worse now" in m for m in messages(receiver)), messages(receiver)


def test_heartbeat_pings_only_while_protected_and_fails_with_the_reason_once_it_held(
        services, demo_backend, proxy, data_dir, receiver):
    check = f"/{CHECK_ID}"
    # HEARTBEAT_INTERVAL 1 s: a /fail for an earlier problem does not hide the next one's for 5 minutes.
    start_watching(services, demo_backend, proxy, data_dir, HEARTBEAT_URL=receiver.url + check,
                   HEARTBEAT_INTERVAL="1")
    rounds = read_state(data_dir, KEEP_ALIVE).iterations
    wait_until(lambda: read_state(data_dir, KEEP_ALIVE).iterations >= rounds + 3, DEADLINE, "three rounds")
    settled = figures(data_dir, KEEP_ALIVE)
    if settled["verdict"] == "PROTECTED":
        wait_until(lambda: [r for r in receiver.received() if r["path"] == check], DEADLINE, "a success ping")
    else:
        assert not [r for r in receiver.received() if r["path"] == check], settled

    proxy.set_fault("502", path_prefix="/api/health")
    fail = wait_until(lambda: [r for r in receiver.received()
                               if r["path"] == check + "/fail" and "backend_down" in r["body"]], DEADLINE, "/fail")
    assert fail[0]["body"].startswith("sleepguard: NOT PROTECTED\n- backend_down")
    # While the outage holds, no success ping follows the /fail.
    rounds = read_state(data_dir, KEEP_ALIVE).iterations
    wait_until(lambda: read_state(data_dir, KEEP_ALIVE).iterations >= rounds + 3, DEADLINE, "three more rounds")
    received = receiver.received()
    assert not [r for r in received[received.index(fail[0]) + 1:] if r["path"] == check]


def test_an_alert_receiver_down_for_several_periods_gets_every_alert_once_and_the_loops_keep_running(
        services, demo_backend, proxy, data_dir, start_receiver):
    steady, flaky = start_receiver(), start_receiver()
    start_watching(services, demo_backend, proxy, data_dir, [steady.apprise_url, flaky.apprise_url])
    flaky.stop()
    started, rounds = time.monotonic(), read_state(data_dir, KEEP_ALIVE).iterations
    down_then_up(proxy, data_dir, [steady])
    # Down for several ALERT_AFTER periods (2 rounds of 0.3 s each) past the 'up' alert too.
    wait_until(lambda: read_state(data_dir, KEEP_ALIVE).iterations >= rounds + 12, DEADLINE, "twelve rounds")
    flaky.start()
    wait_until(lambda: saying(flaky, UP_WORDS) and len(messages(flaky)) >= len(messages(steady)), 60,
               "the alerts held for the receiver that was down")
    elapsed, done = time.monotonic() - started, read_state(data_dir, KEEP_ALIVE).iterations - rounds
    for receiver in (steady, flaky):
        assert len(saying(receiver, DOWN_WORDS, without="Fine again")) == 1
        assert len(saying(receiver, UP_WORDS)) == 1
    assert sorted(messages(steady)) == sorted(messages(flaky))
    # The loop kept its pace while a receiver was down: each round is 0.3 s of waiting plus its own work.
    assert done >= elapsed / 0.6 - 1, (done, elapsed)
    assert all(process.poll() is None for process in services.started)


def test_a_large_deletion_held_and_a_service_that_died_are_each_one_alert_with_its_fix(services, demo_backend, proxy,
                                                                                      data_dir, receiver):
    import requests
    start_watching(services, demo_backend, proxy, data_dir, [receiver.apprise_url])

    def one_alert_saying(words, what, since):
        """The one alert with these words among the messages after the first `since`, four rounds after it came.

        Only those: on a loaded machine the services' start can take ALERT_AFTER rounds, and the keep-alive then
        says 'not running' and 'Fine again' for a sibling still starting, before this test did anything.
        """
        def saying_it():
            return [m for m in messages(receiver)[since:] if words in m]
        wait_until(saying_it, DEADLINE, what)
        rounds = read_state(data_dir, KEEP_ALIVE).iterations
        wait_until(lambda: read_state(data_dir, KEEP_ALIVE).iterations >= rounds + 4, DEADLINE, "four more rounds")
        assert len(saying_it()) == 1, messages(receiver)
        return saying_it()[0]

    state = demo_backend.state()
    since = len(messages(receiver))
    for customer in state["customers"][1:]:  # three of the four at once: over LARGE_DROP_FRACTION
        requests.delete(f"{demo_backend.url}/api/customers/{customer['id']}", params={"user_id": customer["user_id"]},
                        timeout=10).raise_for_status()
    held = one_alert_saying("A large deletion is held for review", "the 'held' alert", since)
    # Owners are named masked, never in full.
    assert "--accept-shrink" in held and not re.search(r"\bowner\d+@example\.com", held), held

    restore_service = next(p for p in services.started if p.args[-1].endswith(f"{RESTORE}.py"))
    since = len(messages(receiver))
    restore_service.kill()
    died = one_alert_saying("The auto-restore service is not running.", "the 'service died' alert", since)
    assert "Fix: python3 start_all_super_services.py" in died


def matching(receiver, pattern):
    return [m for m in messages(receiver) if re.search(pattern, m)]


def one_message_then_fine_again(receiver, data_dir, pattern, what):
    """Exactly one alert matching pattern, and once the trouble ended, exactly one 'Fine again' for it."""
    wait_until(lambda: matching(receiver, "Fine again: " + pattern), DEADLINE, f"'fine again' after {what}")
    rounds = read_state(data_dir, KEEP_ALIVE).iterations
    wait_until(lambda: read_state(data_dir, KEEP_ALIVE).iterations >= rounds + 4, DEADLINE, "four more rounds")
    (told,) = [m for m in matching(receiver, pattern) if not re.search("Fine again: " + pattern, m)]
    assert len(matching(receiver, "Fine again: " + pattern)) == 1
    return told


def backup_service(services):
    return next(p for p in services.started if p.args[-1].endswith(f"{BACKUP}.py"))


def test_backups_failing_is_one_alert_with_the_reason_then_one_fine_again(services, demo_backend, proxy, data_dir,
                                                                          receiver):
    start_watching(services, demo_backend, proxy, data_dir, [receiver.apprise_url])
    # The host answers its health checks, but every read of the customers fails: the backups cannot be taken.
    proxy.set_fault("502", path_prefix="/api/customers", method="GET")
    wait_until(lambda: matching(receiver, BACKUPS_FAILED), DEADLINE, "the 'backups failing' alert")
    proxy.clear()
    told = one_message_then_fine_again(receiver, data_dir, BACKUPS_FAILED, "the backups failing")
    assert "host answered 502" in told and "Fix: python3 manual_backup.py" in told, told
    assert DOWN_WORDS not in told


def test_disk_trouble_on_the_watcher_is_one_alert_naming_it_then_one_fine_again(services, demo_backend, proxy,
                                                                               data_dir, receiver):
    # Warnings only in the backup service's log: it stays below the file size cap, only the backup is above it.
    start_watching(services, demo_backend, proxy, data_dir, [receiver.apprise_url], LOG_LEVEL="WARNING")
    running = psutil.Process(backup_service(services).pid)
    _soft, hard = running.rlimit(psutil.RLIMIT_FSIZE)
    # Root ignores file modes, so the disk trouble is made for real: a file size cap on the running backup service.
    running.rlimit(psutil.RLIMIT_FSIZE, (16 * 1024, hard))
    seed_shop(demo_backend.url, users=2, customers=40, prefix="added")
    wait_until(lambda: saying(receiver, "Disk trouble on the watcher"), DEADLINE, "the 'disk trouble' alert")
    running.rlimit(psutil.RLIMIT_FSIZE, (hard, hard))
    told = one_message_then_fine_again(receiver, data_dir, "Disk trouble on the watcher", "the disk trouble")
    assert "File too large" in told and "Fix: free some space" in told, told


def test_a_restore_failing_is_one_alert_with_the_reason_then_the_restore_and_fine_again(services, demo_backend, proxy,
                                                                                      data_dir, receiver):
    start_watching(services, demo_backend, proxy, data_dir, [receiver.apprise_url])
    # The back end reads fine but refuses every new account: the wipe is seen, the restore cannot put it right.
    proxy.set_fault("502", path_prefix="/api/users", method="POST")
    demo_backend.sleep_now()
    wait_until(lambda: saying(receiver, "Putting the data back failed"), DEADLINE, "the 'restore failing' alert")
    assert not demo_backend.state()["users"]
    proxy.clear()
    told = one_message_then_fine_again(receiver, data_dir, "Putting the data back failed", "the restore failing")
    # The cause comes first, so it survives the line being cut short.
    assert re.search(r"NOT complete: user o\*\*\*\d@example\.com: POST /api/users.*502", told), told
    assert "Fix: python3 restore_simple.py" in told, told
    wait_until(lambda: saying(receiver, "sleepguard restored it: 2 users and 4 customers are back"), DEADLINE,
               "the 'restored' alert")
    assert not re.search(r"\bowner\d+@example\.com", " ".join(messages(receiver)))
