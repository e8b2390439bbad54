"""Restore against a real demo back end: every customer under its own owner, no duplicates, no shared PIN."""

import json
import os
import stat
import threading

import pytest
import requests

from conftest import DEMO_TOKEN
from counting_proxy import CountingProxy
from fault_proxy import FaultProxy
from helpers import (GUESSES, backup_now, customer_count, legacy_snapshot, make_settings, seed_shop, shop_view,
                     signs_in, sorted_state)
from sleepguard.apply import apply_plan, restore_now
from sleepguard.client import BackendClient
from sleepguard.exceptions import RestoreError
from sleepguard.pins import pending_pins, read_restored_pins, restored_pins_path
from sleepguard.plan import plan_restore
from sleepguard.restore_lock import running_restore
from sleepguard.services import restore_progress_path
from sleepguard.snapshot import parse_backup
from sleepguard.wording import describe_report


def write_pins_file(settings, shop, mode=0o600):
    settings.pins_file.write_text(json.dumps({email: owner["pin"] for email, owner in shop.items()}))
    os.chmod(settings.pins_file, mode)


def backed_up_shop(demo, data_dir, users=3, customers=3, **overrides):
    """Seed the demo, take a good backup, return (settings, shop, admin state at backup time)."""
    shop = seed_shop(demo.url, users=users, customers=customers)
    settings = make_settings(data_dir, demo.url, **overrides)
    assert backup_now(settings).kind == "good"
    return settings, shop, demo.state()


def restore(settings, backup, **options):
    """restore_now over a client of its own, as restore_simple.py runs it."""
    with BackendClient(settings) as client:
        return restore_now(settings, backup, client, **options)


# --- API mode against the demo back end ---

def test_wipe_then_restore_puts_everything_back_under_its_owner_and_each_pin_from_the_pins_file(demo_backend,
                                                                                             data_dir):
    settings, shop, before = backed_up_shop(demo_backend, data_dir)
    write_pins_file(settings, shop)
    demo_backend.sleep_now()
    report = restore(settings, parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes()))
    assert report.complete and report.result.failures == []
    after = demo_backend.state()
    assert shop_view(after) == shop_view(before) and customer_count(after) == customer_count(before)
    emails = sorted(shop)
    for index, email in enumerate(emails):
        assert signs_in(demo_backend.url, email, shop[email]["pin"])
        other = emails[(index + 1) % len(emails)]
        for wrong in (shop[other]["pin"], *GUESSES):
            assert not signs_in(demo_backend.url, email, wrong), f"{email} accepts a PIN it was not given"
    assert report.result.pins_to_hand_out == [] and not restored_pins_path(data_dir).exists()


def test_without_a_pins_file_each_user_gets_a_fresh_pin_of_its_own_in_restored_pins(demo_backend, data_dir):
    settings, shop, before = backed_up_shop(demo_backend, data_dir)
    demo_backend.sleep_now()
    report = restore(settings, parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes()))
    assert report.complete
    assert shop_view(demo_backend.state()) == shop_view(before)
    path = restored_pins_path(data_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    restored = read_restored_pins(data_dir)
    assert sorted(restored) == sorted(shop) == report.result.pins_to_hand_out == pending_pins(data_dir)
    assert len(set(restored.values())) == len(restored), "two users share a PIN"
    emails = sorted(shop)
    for index, email in enumerate(emails):
        assert signs_in(demo_backend.url, email, restored[email])
        other = emails[(index + 1) % len(emails)]
        for wrong in (restored[other], shop[email]["pin"], shop[other]["pin"], *GUESSES):
            assert not signs_in(demo_backend.url, email, wrong), f"{email} accepts a PIN it was not given"


def test_an_owner_who_signed_up_again_keeps_the_new_pin_and_customer_and_gets_the_old_ones_back(demo_backend,
                                                                                                 data_dir):
    settings, shop, before = backed_up_shop(demo_backend, data_dir)
    write_pins_file(settings, shop)
    demo_backend.sleep_now()
    owner = sorted(shop)[0]
    again = seed_shop(demo_backend.url, users=1, customers=0, pin_of=lambda i: "8642")
    assert list(again) == [owner]
    requests.post(f"{demo_backend.url}/api/customers", params={"user_id": again[owner]["id"]},
                  json={"name": "New since the wipe", "orders": []}, timeout=10).raise_for_status()
    report = restore(settings, parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes()))
    assert report.complete
    assert (report.result.users_created, report.result.users_existing) == (len(shop) - 1, 1)
    after = demo_backend.state()
    expected = shop_view(before)
    expected[owner]["New since the wipe"] = (0.0, 0.0, [])
    assert shop_view(after) == expected and customer_count(after) == customer_count(before) + 1
    assert [u["id"] for u in after["users"] if u["email"] == owner] == [again[owner]["id"]]
    assert signs_in(demo_backend.url, owner, "8642")
    assert not signs_in(demo_backend.url, owner, shop[owner]["pin"])


def test_restoring_twice_creates_nothing_the_second_time_even_from_a_stale_plan(demo_backend, data_dir):
    settings, shop, before = backed_up_shop(demo_backend, data_dir)
    backup = parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes())
    demo_backend.sleep_now()
    with BackendClient(settings) as client:
        stale_plan = plan_restore(backup, client.read_snapshot(), {})
        first = apply_plan(client, stale_plan, settings)
        pins_after_first = read_restored_pins(data_dir)
        second = apply_plan(client, stale_plan, settings)
    assert (first.users_created, first.customers_created) == (3, 9)
    assert (second.users_created, second.customers_created, second.failures) == (0, 0, [])
    assert (second.users_existing, second.customers_existing) == (3, 9)
    assert shop_view(demo_backend.state()) == shop_view(before) and customer_count(demo_backend.state()) == 9
    assert read_restored_pins(data_dir) == pins_after_first, "a second run must not change the PINs to hand out"
    again = restore(settings, backup)
    assert again.plan.empty and again.result is None and again.complete


def test_many_owners_each_get_exactly_their_own_customers_back(demo_backend, data_dir):
    settings, shop, before = backed_up_shop(demo_backend, data_dir, users=20, customers=5)
    demo_backend.sleep_now()
    report = restore(settings, parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes()))
    assert (report.result.users_created, report.result.customers_created) == (20, 100)
    after = demo_backend.state()
    assert shop_view(after) == shop_view(before) and customer_count(after) == 100


def test_lost_answers_are_retried_and_create_nothing_twice(demo_backend, data_dir):
    settings, shop, before = backed_up_shop(demo_backend, data_dir)
    backup = parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes())
    demo_backend.sleep_now()
    with BackendClient(settings) as client:
        plan = plan_restore(backup, client.read_snapshot(), {})
    with FaultProxy(demo_backend.url) as proxy:
        proxied = make_settings(data_dir, proxy.url, RESTORE_WORKERS=1)
        with BackendClient(proxied) as client:
            # The server creates the record, the answer is cut short: the retry must find it, not add one.
            proxy.set_fault("truncated", path_prefix="/api/users", count=1)
            users_done = apply_plan(client, plan.__class__(target=plan.target, users=plan.users), proxied)
            proxy.set_fault("truncated", path_prefix="/api/customers", count=2)
            result = apply_plan(client, plan, proxied)
    assert users_done.users_created == 3 and users_done.failures == []
    assert result.customers_created == 9 and result.failures == []
    after = demo_backend.state()
    assert shop_view(after) == shop_view(before) and customer_count(after) == 9
    restored = read_restored_pins(data_dir)
    assert all(signs_in(demo_backend.url, email, restored[email]) for email in shop)


def test_a_rejected_record_is_reported_and_the_rest_is_restored(demo_backend, data_dir):
    settings = make_settings(data_dir, demo_backend.url)
    backup = legacy_snapshot(["good@example.com", "not-an-email"], [])
    report = restore(settings, backup)
    assert report.result.users_created == 1
    assert len(report.result.failures) == 1 and report.result.failures[0].startswith("user not-an-email: ")
    assert report.missing == ["user not-an-email"] and not report.complete
    assert [u["email"] for u in demo_backend.state()["users"]] == ["good@example.com"]
    assert pending_pins(data_dir) == ["good@example.com"]


# --- snapshot mode ---

def test_snapshot_mode_puts_the_exact_state_back_ids_and_pin_hashes_included(demo_backend, data_dir):
    settings, shop, before = backed_up_shop(demo_backend, data_dir, BACKEND_MODE="snapshot", API_TOKEN=DEMO_TOKEN)
    demo_backend.sleep_now()
    report = restore(settings, parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes()))
    assert report.complete
    assert sorted_state(demo_backend.state()) == sorted_state(before)
    email = sorted(shop)[0]
    assert signs_in(demo_backend.url, email, shop[email]["pin"])
    assert not restored_pins_path(data_dir).exists()


def test_snapshot_mode_never_replaces_newer_data(demo_backend, data_dir):
    settings, shop, before = backed_up_shop(demo_backend, data_dir, BACKEND_MODE="snapshot", API_TOKEN=DEMO_TOKEN)
    backup = parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes())
    demo_backend.sleep_now()
    seed_shop(demo_backend.url, users=1, customers=1, prefix="newcomer")
    state = demo_backend.state()
    with pytest.raises(RestoreError, match="newer data than the backup.*user newcomer0@example.com"):
        restore(settings, backup)
    assert demo_backend.state() == state


def test_snapshot_mode_refuses_a_backup_without_pin_hashes(demo_backend, data_dir):
    settings, shop, before = backed_up_shop(demo_backend, data_dir)
    demo_backend.sleep_now()
    snapshot_settings = make_settings(data_dir, demo_backend.url, BACKEND_MODE="snapshot", API_TOKEN=DEMO_TOKEN)
    with pytest.raises(RestoreError, match="no PIN hashes"):
        restore(snapshot_settings, parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes()))
    assert demo_backend.state()["users"] == []


# --- how often a restore reads the back end ---

def reads_per_snapshot(proxy, settings, path):
    """How many requests to path one full read of the back end makes (the client may look twice)."""
    before = proxy.count("GET", path)
    with BackendClient(settings) as client:
        client.read_snapshot()
    return proxy.count("GET", path) - before


@pytest.mark.parametrize("mode", ["babs10", "snapshot"])
def test_a_restore_reads_the_back_end_at_most_twice_the_decision_read_then_the_verifying_read(demo_backend,
                                                                                           data_dir, mode):
    settings, shop, before = backed_up_shop(demo_backend, data_dir, users=4, customers=2, BACKEND_MODE=mode,
                                            API_TOKEN=DEMO_TOKEN)
    backup = parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes())
    listing = "/api/users" if mode == "babs10" else "/api/admin/snapshot"
    with CountingProxy(demo_backend.url) as proxy:
        proxied = make_settings(data_dir, proxy.url, BACKEND_MODE=mode, API_TOKEN=DEMO_TOKEN)
        per_read = reads_per_snapshot(proxy, proxied, listing)
        assert per_read >= 1
        for given in (False, True):
            demo_backend.sleep_now()
            proxy.reset()
            with BackendClient(proxied) as client:
                # The caller's own read (the restore service's wipe check) is the decision read when given.
                current = client.read_snapshot() if given else None
                report = restore_now(proxied, backup, client, current=current)
            assert report.complete and shop_view(demo_backend.state()) == shop_view(before)
            assert proxy.count("GET", listing) <= 2 * per_read, f"more than two full reads (current given: {given})"


# --- stopping part-way ---

class StopsAfter(BackendClient):
    """A real client that sets the stop event once it has created `users` accounts, as a Ctrl-C would."""

    def __init__(self, settings, users, stopping):
        super().__init__(settings)
        self.left, self.stopping, self.lock = users, stopping, threading.Lock()

    def create_user(self, email, pin):
        answer = super().create_user(email, pin)
        with self.lock:
            self.left -= 1
            if self.left <= 0:
                self.stopping.set()
        return answer


def test_a_stopped_restore_keeps_the_pins_of_exactly_the_accounts_it_created_and_finishes_when_run_again(
        demo_backend, data_dir):
    settings, shop, before = backed_up_shop(demo_backend, data_dir, users=30, customers=1, RESTORE_WORKERS=2)
    backup = parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes())
    demo_backend.sleep_now()
    stopping = threading.Event()
    with StopsAfter(settings, 5, stopping) as client:
        report = restore_now(settings, backup, client, stopping=stopping)
    assert report.interrupted and not report.complete and report.missing == []
    created = sorted(user["email"] for user in demo_backend.state()["users"])
    assert 5 <= len(created) < 30 and report.result.users_created == len(created)
    assert sorted(read_restored_pins(data_dir)) == created == report.result.pins_to_hand_out
    # Owner by owner (issue 11): customers only of the accounts created, each right after its owner.
    owner_ids = {user["id"] for user in demo_backend.state()["users"]}
    customers = demo_backend.state()["customers"]
    assert report.result.customers_created == len(customers) <= len(created)
    assert all(customer["user_id"] in owner_ids for customer in customers)
    pins = read_restored_pins(data_dir)
    again = restore(settings, backup)
    assert again.complete and shop_view(demo_backend.state()) == shop_view(before)
    assert sorted(read_restored_pins(data_dir)) == sorted(shop)
    assert all(read_restored_pins(data_dir)[email] == pin for email, pin in pins.items()), "a PIN handed out changed"


# --- e-mails as the owner types them, against the demo's stored form ---

def test_an_owner_who_typed_her_address_in_other_case_gets_her_own_pin_back(demo_backend, data_dir, caplog):
    url = demo_backend.url
    for email, pin in (("Auntie.Ama@Example.COM", "4821"), ("kofi@example.com", "7390")):
        requests.post(f"{url}/api/users", json={"email": email, "pin": pin}, timeout=10).raise_for_status()
    settings = make_settings(data_dir, url)
    assert backup_now(settings).kind == "good"
    # Keys as the owner typed them: the domain's case (normalised away), and a local part of other case.
    settings.pins_file.write_text(json.dumps({"Auntie.Ama@Example.COM": "4821", "Kofi@example.com": "7390"}))
    os.chmod(settings.pins_file, 0o600)
    demo_backend.sleep_now()
    caplog.set_level("WARNING", logger="sleepguard.apply")
    report = restore(settings, parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes()))
    assert report.complete and report.result.pins_to_hand_out == []
    assert signs_in(url, "Auntie.Ama@example.com", "4821") and signs_in(url, "kofi@example.com", "7390")
    assert [(m.key, m.email) for m in report.plan.pin_matches] == [("Kofi@example.com", "kofi@example.com")]
    warning = ("warning: PIN file key 'Kofi@example.com' taken for the account kofi@example.com: they differ only "
               "in the case of the part before the @, which the server keeps; check it is the same person")
    assert warning in describe_report(report)
    assert "'Kofi@example.com' taken for account kofi@example.com" in caplog.text and "7390" not in caplog.text


def test_an_owner_whose_account_could_not_be_made_is_never_called_back_first(demo_backend, data_dir):
    settings, _shop, _before = backed_up_shop(demo_backend, data_dir, users=2, customers=1)
    backup = parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes())
    demo_backend.sleep_now()
    with FaultProxy(demo_backend.url) as proxy:
        # Reads pass, every new account is refused with a 502: nothing comes back.
        proxy.set_fault("502", path_prefix="/api/users", method="POST")
        report = restore(make_settings(data_dir, proxy.url, RETRIES=0), backup)
    assert not report.complete and report.result.users_created == 0
    assert report.result.first_owner is None and "first owner" not in describe_report(report)


def test_the_owner_who_saved_last_is_back_with_all_her_customers_before_anyone_else_is_created(demo_backend,
                                                                                              data_dir):
    url = demo_backend.url
    shop = seed_shop(url, users=4, customers=3)
    saver, busier = "owner1@example.com", "owner2@example.com"
    # Another owner changed a customer later; the trigger still says owner1 saved last.
    requests.post(f"{url}/api/customers", params={"user_id": shop[busier]["id"]}, json={"name": "Late one"},
                  timeout=10).raise_for_status()
    requests.post(f"{url}/api/backup/trigger", json={"user": saver, "action": "save", "timestamp": "now"},
                  timeout=10).raise_for_status()
    settings = make_settings(data_dir, url)
    assert backup_now(settings).kind == "good"
    backup = parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes())
    assert backup.meta["recent_trigger_users"] == [saver]
    demo_backend.sleep_now()
    report = restore(settings, backup)
    assert report.complete and report.result.first_owner == saver
    state = demo_backend.state()
    created = {u["id"]: (u["email"], u["created_at"]) for u in state["users"]}
    saver_id = next(uid for uid, (email, _) in created.items() if email == saver)
    saver_done = max([created[saver_id][1]] + [c["created_at"] for c in state["customers"] if c["user_id"] == saver_id])
    assert len([c for c in state["customers"] if c["user_id"] == saver_id]) == 3
    others = [at for email, at in created.values() if email != saver]
    assert saver_done < min(others), "another user was created before owner1 and all her customers were back"
    summary = describe_report(report)[1]
    assert summary.startswith("restore: 4 users, 13 customers created, 0 failed in ")
    assert "; first owner (o***1@example.com) back after " in summary


def test_a_running_restore_says_how_far_it_got_and_leaves_no_trace_at_the_end(demo_backend, data_dir):
    settings, shop, _ = backed_up_shop(demo_backend, data_dir, users=3, customers=1)
    backup = parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes())
    demo_backend.sleep_now()
    seen = []
    with FaultProxy(demo_backend.url) as proxy:
        # Each user's creation takes a while, as the server's PIN hash does.
        proxy.set_fault("latency", path_prefix="/api/users", latency=0.3)
        proxied = make_settings(data_dir, proxy.url, READ_TIMEOUT=10)
        done = threading.Event()
        worker = threading.Thread(target=lambda: (restore(proxied, backup), done.set()))
        worker.start()
        while not done.wait(0.02):
            running = running_restore(data_dir)
            # The instant between taking the lock and writing the first progress has no figures yet.
            if running is not None and running["pid"] is not None:
                seen.append((running["pid"], running["users_done"], running["users_total"]))
        worker.join()
    assert seen and {pid for pid, _, _ in seen} == {os.getpid()} and {total for _, _, total in seen} == {3}
    counts_done = {done for _, done, _ in seen}
    assert counts_done <= {0, 1, 2, 3} and len(counts_done) >= 2, seen  # it moved on while it ran
    assert running_restore(data_dir) is None and not restore_progress_path(data_dir).exists()
    assert set(shop_view(demo_backend.state())) == set(shop)


@pytest.mark.parametrize("case, why", [
    ("loose", "is readable by others (mode 0644)"),
    ("malformed", "is not valid JSON"),
    ("named but missing", "does not exist"),
])
def test_the_restore_service_goes_on_without_a_bad_pins_file_giving_new_pins(demo_backend, data_dir, tmp_path, case,
                                                                              why):
    named = tmp_path / "owner-pins.json"
    settings, shop, before = backed_up_shop(demo_backend, data_dir, **({"PINS_FILE": str(named)}
                                                                         if case == "named but missing" else {}))
    if case == "loose":
        write_pins_file(settings, shop, mode=0o644)
    elif case == "malformed":
        settings.pins_file.write_text('{"owner0@example.com": ')
        os.chmod(settings.pins_file, 0o600)
    demo_backend.sleep_now()
    backup = parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes())
    report = restore(settings, backup, without_bad_pins_file=True)
    assert report.complete and why in report.pins_file_problem
    assert report.result.pins_to_hand_out == sorted(shop) == pending_pins(data_dir)
    assert shop_view(demo_backend.state()) == shop_view(before)
    # The command still refuses it in one line: the owner at the terminal can fix it and run again.
    if case != "named but missing":
        demo_backend.sleep_now()
        with pytest.raises(Exception, match=why.split(" (")[0]):
            restore(settings, backup)
