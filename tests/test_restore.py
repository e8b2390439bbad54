"""Restore against a real demo back end: every customer under its own owner, no duplicates, no shared PIN."""

import json
import os
import stat

import pytest
import requests

from conftest import DEMO_TOKEN
from fault_proxy import FaultProxy
from helpers import GUESSES, backup_now, customer_count, make_settings, seed_shop, shop_view, signs_in, sorted_state
from sleepguard.client import BackendClient
from sleepguard.exceptions import RestoreError
from sleepguard.pins import pending_pins, read_restored_pins, restored_pins_path
from sleepguard.restore import apply_plan, describe_plan, plan_restore, restore_now, verify_restore
from sleepguard.snapshot import Snapshot, parse_backup

def write_pins_file(settings, shop, mode=0o600):
    settings.pins_file.write_text(json.dumps({email: owner["pin"] for email, owner in shop.items()}))
    os.chmod(settings.pins_file, mode)


def backed_up_shop(demo, data_dir, users=3, customers=3, **overrides):
    """Seed the demo, take a good backup, return (settings, shop, admin state at backup time)."""
    shop = seed_shop(demo.url, users=users, customers=customers)
    settings = make_settings(data_dir, demo.url, **overrides)
    assert backup_now(settings).kind == "good"
    return settings, shop, demo.state()


def legacy_snapshot(users, customers, pins=None):
    doc = {"backup_created": "2025-08-21T02:23:11", "backup_type": "auto",
           "users": [{"id": f"id-{i}", "email": email, **({"pin": pins[email]} if pins else {})}
                     for i, email in enumerate(users)],
           "customers": [{"id": f"c-{i}", "name": name, "money_given": 1.0, "total_spent": 2.0, "orders": []}
                         for i, name in enumerate(customers)]}
    return parse_backup(json.dumps(doc).encode())


def api_snapshot(owners):
    """A Snapshot as an API read gives it, from {email: [customer names]}."""
    users = [{"id": f"id-{email}", "email": email} for email in owners]
    customers = {f"id-{email}": [{"id": f"c-{email}-{name}", "name": name, "money_given": 0.0, "total_spent": 0.0,
                                  "orders": [{"id": "o1"}]} for name in names] for email, names in owners.items()}
    return Snapshot.from_api(users, customers, {"mode": "babs10"})


# --- planning, no back end needed ---

def test_plan_creates_only_what_is_missing_matching_users_by_email_and_customers_by_owner_and_name():
    backup = api_snapshot({"a@example.com": ["Maria", "Chen"], "b@example.com": ["Maria"], "c@example.com": ["Sofia"]})
    current = api_snapshot({"a@example.com": ["Maria", "New one"], "c@example.com": []})
    plan = plan_restore(backup, current, {})
    assert [user.email for user in plan.users] == ["b@example.com"]
    assert sorted((c.owner_email, c.name) for c in plan.customers) == [
        ("a@example.com", "Chen"), ("b@example.com", "Maria"), ("c@example.com", "Sofia")]
    assert plan.existing_users == ["a@example.com", "c@example.com"]
    assert plan.existing_customers == [("a@example.com", "Maria")]
    assert plan.owner_ids == {"a@example.com": "id-a@example.com", "c@example.com": "id-c@example.com"}
    assert plan.customers[0].body == {"name": "Chen", "money_given": 0.0, "total_spent": 0.0, "orders": [{"id": "o1"}]}


def test_plan_takes_pins_from_the_pins_file_then_the_legacy_file_then_restored_pins_and_never_prints_them():
    emails = ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]
    backup = legacy_snapshot(emails, [], pins={"a@example.com": "1111", "b@example.com": "2222",
                                               "c@example.com": "", "d@example.com": ""})
    plan = plan_restore(backup, api_snapshot({}), {"a@example.com": "5151"}, {"c@example.com": "616263"})
    sources = {user.email: (user.pin_source, user.pin) for user in plan.users}
    assert sources == {"a@example.com": ("pins file", "5151"), "b@example.com": ("backup file", "2222"),
                       "c@example.com": ("restored_pins.json", "616263"), "d@example.com": ("new random", None)}
    printed = "\n".join(describe_plan(plan)) + repr(plan) + str(plan.users)
    assert "create user d@example.com (new random PIN, kept in restored_pins.json to hand out)" in printed
    for pin in ("5151", "2222", "616263"):
        assert pin not in printed


def test_our_own_backups_never_lend_a_stored_field_as_a_pin():
    backup = api_snapshot({"a@example.com": []})
    backup.users[0]["pin"] = "9999"  # only a legacy hand-made file may carry plain PINs
    assert plan_restore(backup, api_snapshot({}), {}).users[0].pin_source == "new random"


def test_plan_skips_customers_a_legacy_file_cannot_attribute_and_says_use_owner():
    backup = legacy_snapshot(["a@example.com", "b@example.com"], ["Maria", "Chen"])
    plan = plan_restore(backup, api_snapshot({}), {})
    assert plan.customers == []
    lines = describe_plan(plan)
    assert sum("skip customer" in line and "use --owner EMAIL" in line for line in lines) == 2
    assert verify_restore(backup, api_snapshot({"a@example.com": [], "b@example.com": []})) == [
        "2 customers the file gives no owner (use --owner EMAIL)"]


def test_verify_names_what_is_still_missing():
    backup = api_snapshot({"a@example.com": ["Maria"], "b@example.com": ["Chen"]})
    current = api_snapshot({"a@example.com": [], "b@example.com": ["Chen"]})
    assert verify_restore(backup, current) == ["customer 'Maria' of a@example.com"]
    assert verify_restore(backup, backup) == []


# --- API mode against the demo back end ---

def test_wipe_then_restore_puts_everything_back_under_its_owner_and_each_pin_from_the_pins_file(demo_backend,
                                                                                             data_dir):
    settings, shop, before = backed_up_shop(demo_backend, data_dir)
    write_pins_file(settings, shop)
    demo_backend.sleep_now()
    report = restore_now(settings, parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes()))
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
    report = restore_now(settings, parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes()))
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
    report = restore_now(settings, parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes()))
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
    again = restore_now(settings, backup)
    assert again.plan.empty and again.result is None and again.complete


def test_many_owners_each_get_exactly_their_own_customers_back(demo_backend, data_dir):
    settings, shop, before = backed_up_shop(demo_backend, data_dir, users=20, customers=5)
    demo_backend.sleep_now()
    report = restore_now(settings, parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes()))
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
    report = restore_now(settings, backup)
    assert report.result.users_created == 1
    assert len(report.result.failures) == 1 and report.result.failures[0].startswith("user not-an-email: ")
    assert report.missing == ["user not-an-email"] and not report.complete
    assert [u["email"] for u in demo_backend.state()["users"]] == ["good@example.com"]
    assert pending_pins(data_dir) == ["good@example.com"]


# --- snapshot mode ---

def test_snapshot_mode_puts_the_exact_state_back_ids_and_pin_hashes_included(demo_backend, data_dir):
    settings, shop, before = backed_up_shop(demo_backend, data_dir, BACKEND_MODE="snapshot", API_TOKEN=DEMO_TOKEN)
    demo_backend.sleep_now()
    report = restore_now(settings, parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes()))
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
        restore_now(settings, backup)
    assert demo_backend.state() == state


def test_snapshot_mode_refuses_a_backup_without_pin_hashes(demo_backend, data_dir):
    settings, shop, before = backed_up_shop(demo_backend, data_dir)
    demo_backend.sleep_now()
    snapshot_settings = make_settings(data_dir, demo_backend.url, BACKEND_MODE="snapshot", API_TOKEN=DEMO_TOKEN)
    with pytest.raises(RestoreError, match="no PIN hashes"):
        restore_now(snapshot_settings, parse_backup(settings.data_dir.joinpath("data_backup.json").read_bytes()))
    assert demo_backend.state()["users"] == []
