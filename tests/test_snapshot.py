"""The backup document: owners recorded, content checksummed, legacy files read honestly."""

import json

import pytest

from sleepguard.exceptions import BackupFileError
from sleepguard.snapshot import Snapshot, parse_backup

ORDER = {"id": "o-1", "orderRef": "", "orderDate": "2025-08-21",
         "items": [{"desc": "Amazon 1", "qty": "1", "color": "", "size": "", "price": "60.94"}],
         "comments": "", "savedAt": "8/21/2025, 2:23:11 AM"}
USERS = [{"id": "u2", "email": "b@example.com"}, {"id": "u1", "email": "a@example.com"}]
CUSTOMERS = {"u1": [{"id": "c1", "name": "Zed", "money_given": 1.5, "orders": [ORDER]}],
             "u2": [{"id": "c2", "name": "Amy", "money_given": 0.0, "orders": []}]}


def sample():
    return Snapshot.from_api(USERS, CUSTOMERS, {"created_at": "2026-11-29T00:00:00Z", "mode": "babs10"})


def test_customers_are_nested_under_their_owner_and_orders_kept_exactly():
    snapshot = sample()
    by_email = snapshot.customers_by_email()
    assert [c["name"] for c in by_email["a@example.com"]] == ["Zed"]
    assert by_email["a@example.com"][0]["orders"] == [ORDER]
    assert snapshot.counts() == {"users": 2, "customers": 2, "orders": 1}


def test_document_round_trip_verifies_its_checksum():
    document = sample().to_document()
    again = parse_backup(json.dumps(document).encode())
    assert again.checksum() == document["sha256"] and again.users == sample().users


def test_checksum_ignores_read_order_and_metadata():
    reordered = Snapshot.from_api(list(reversed(USERS)), CUSTOMERS, {"created_at": "later"})
    assert reordered.checksum() == sample().checksum()


@pytest.mark.parametrize("damage, reason", [
    (lambda d: d["content"]["users"][0]["customers"].pop(), "checksum mismatch"),
    (lambda d: d.update(sha256="0" * 64), "checksum mismatch"),
    (lambda d: d["content"].update(users="nope"), "wrong shape"),
    (lambda d: d.update(format_version=99), "not one this sleepguard reads"),
])
def test_damaged_documents_are_refused_with_the_reason(damage, reason):
    document = sample().to_document()
    damage(document)
    with pytest.raises(BackupFileError, match=reason):
        parse_backup(json.dumps(document).encode())


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"), (b'{"format": "sleepguard-backup", "con', "not valid JSON"),
    (b"[1, 2]", "wrong shape"), (b"\xff\xfe", "not valid JSON"),
])
def test_unreadable_files_are_refused_with_the_reason(data, reason):
    with pytest.raises(BackupFileError, match=reason):
        parse_backup(data)


def test_admin_state_round_trip_is_lossless():
    state = {"users": [{"id": "u1", "email": "a@example.com", "pin_hash": "pbkdf2_sha256$1$aa$bb"}],
             "customers": [{"id": "c1", "user_id": "u1", "name": "Zed", "orders": [ORDER]},
                           {"id": "c9", "user_id": "ghost", "name": "Orphan", "orders": []}],
             "backup_triggers": [{"user": "a@example.com", "action": "save"}]}
    back = Snapshot.from_admin_state(state, {}).to_admin_state()
    assert sorted(back["customers"], key=lambda c: c["id"]) == state["customers"]
    assert back["users"] == state["users"] and back["backup_triggers"] == state["backup_triggers"]


def legacy(users, customers):
    return json.dumps({"backup_created": "2025-08-21T02:00:00", "backup_type": "auto",
                       "users": users, "customers": customers}).encode()


def test_legacy_file_with_one_user_gives_every_customer_to_that_user():
    snapshot = parse_backup(legacy([{"id": "u1", "email": "a@example.com"}], [{"id": "c1", "name": "Zed"}]))
    assert snapshot.customers_by_email()["a@example.com"][0]["name"] == "Zed" and not snapshot.unowned_customers


def test_legacy_file_with_several_users_says_which_customers_have_no_owner():
    data = legacy([{"id": "u1", "email": "a@example.com"}, {"id": "u2", "email": "b@example.com"}],
                  [{"id": "c1", "name": "Zed"}, {"id": "c2", "name": "Amy", "user_id": "u2"}])
    snapshot = parse_backup(data)
    assert [c["name"] for c in snapshot.unowned_customers] == ["Zed"]
    assert [c["name"] for c in snapshot.customers_by_email()["b@example.com"]] == ["Amy"]
    owned = parse_backup(data, owner_email="a@example.com")
    assert [c["name"] for c in owned.customers_by_email()["a@example.com"]] == ["Zed"]
    with pytest.raises(BackupFileError, match="not one of the file's users"):
        parse_backup(data, owner_email="nobody@example.com")
