"""The restore planner, pure: what a restore would create, keep, skip, and what a read still lacks."""

import pytest

from helpers import api_snapshot, legacy_snapshot
from sleepguard.exceptions import RestoreError
from sleepguard.plan import (MISSING_CUSTOMER, MISSING_UNOWNED, MISSING_USER, NO_OWNER_SEVERAL_USERS, Skipped,
                             plan_restore, plan_snapshot_restore, verify_restore)
from sleepguard.wording import describe_missing


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


def test_our_own_backups_never_lend_a_stored_field_as_a_pin():
    backup = api_snapshot({"a@example.com": []})
    backup.users[0]["pin"] = "9999"  # only a legacy hand-made file may carry plain PINs
    assert plan_restore(backup, api_snapshot({}), {}).users[0].pin_source == "new random"


def test_plan_skips_customers_a_legacy_file_cannot_attribute_with_a_reason_code():
    backup = legacy_snapshot(["a@example.com", "b@example.com"], ["Maria", "Chen"])
    plan = plan_restore(backup, api_snapshot({}), {})
    assert plan.customers == []
    assert plan.skipped == [Skipped("customer 'Maria'", NO_OWNER_SEVERAL_USERS),
                            Skipped("customer 'Chen'", NO_OWNER_SEVERAL_USERS)]
    missing = verify_restore(backup, api_snapshot({"a@example.com": [], "b@example.com": []}))
    assert [item.kind for item in missing] == [MISSING_UNOWNED]
    assert describe_missing(missing) == ["2 customers the file gives no owner (use --owner EMAIL)"]


def test_verify_names_what_is_still_missing():
    backup = api_snapshot({"a@example.com": ["Maria"], "b@example.com": ["Chen"]})
    current = api_snapshot({"a@example.com": [], "b@example.com": ["Chen"]})
    assert verify_restore(backup, current) == ["customer 'Maria' of a@example.com"]
    assert verify_restore(backup, backup) == []
    missing = verify_restore(backup, api_snapshot({}))
    assert missing == ["user a@example.com", "user b@example.com", "customer 'Maria' of a@example.com",
                       "customer 'Chen' of b@example.com"]
    assert [item.kind for item in missing] == [MISSING_USER] * 2 + [MISSING_CUSTOMER] * 2


def test_a_snapshot_plan_needs_pin_hashes_and_never_replaces_newer_data():
    with pytest.raises(RestoreError, match="no PIN hashes"):
        plan_snapshot_restore(api_snapshot({"a@example.com": []}), api_snapshot({}))


def test_verify_counts_what_the_file_had_so_a_lost_customer_is_never_verified():
    backup = api_snapshot({"a@example.com": ["Maria"]})
    backup.meta["file_customers"] = 2  # the file had one more than the backup could place
    missing = verify_restore(backup, backup)
    assert missing == ["1 customers of the file that have no place in the backup"]
    twice = api_snapshot({"a@example.com": ["Maria", "Maria"]})
    assert verify_restore(twice, api_snapshot({"a@example.com": ["Maria"]})) == ["customer 'Maria' of a@example.com"]
