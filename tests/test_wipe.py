"""The wipe rule: a wiped or shrunken read is never judged good; a real deletion is."""

from sleepguard.snapshot import Snapshot
from sleepguard.wipe import judge_read


def shop(owners, prefix="id"):
    """A snapshot with owners {email: [customer names]} and ids derived from prefix."""
    users = [{"id": f"{prefix}-{email}", "email": email, "created_at": "2026-01-01T00:00:00",
              "customers": [{"id": f"{prefix}-{email}-{name}", "name": name, "orders": []} for name in names]}
             for email, names in owners.items()]
    return Snapshot(users=users)


GOOD = shop({"owner@example.com": [f"c{i}" for i in range(10)], "helper@example.com": ["h1", "h2"]})


def test_first_read_and_unchanged_and_growth_are_good():
    assert judge_read(GOOD, None).verdict == "first"
    assert judge_read(shop({"owner@example.com": [f"c{i}" for i in range(10)], "helper@example.com": ["h1", "h2"]}),
                      GOOD).verdict == "unchanged"
    grown = shop({"owner@example.com": [f"c{i}" for i in range(11)], "helper@example.com": ["h1", "h2"]})
    assert judge_read(grown, GOOD).verdict == "changed"


def test_empty_back_end_is_a_wipe():
    judgement = judge_read(shop({}), GOOD)
    assert judgement.verdict == "wipe" and not judgement.good
    assert len(judgement.missing_customers) == 12 and judgement.survivors == 0


def test_owner_signed_up_again_with_a_new_customer_is_still_a_wipe():
    again = shop({"owner@example.com": ["brand new"]}, prefix="new")
    judgement = judge_read(again, GOOD)
    assert judgement.verdict == "wipe", judgement.reason
    assert judgement.missing_users == ["helper@example.com"]


def test_restored_data_under_new_ids_is_good():
    restored = shop({"owner@example.com": [f"c{i}" for i in range(10)], "helper@example.com": ["h1", "h2"]},
                    prefix="restored")
    assert judge_read(restored, GOOD).verdict == "changed"


def test_owner_deleting_one_customer_is_a_legitimate_change():
    fewer = shop({"owner@example.com": [f"c{i}" for i in range(9)], "helper@example.com": ["h1", "h2"]})
    judgement = judge_read(fewer, GOOD)
    assert judgement.verdict == "deleted" and judgement.good
    assert judgement.missing_customers == [("owner@example.com", "c9")]


def test_losing_over_half_the_customers_at_once_is_held():
    fewer = shop({"owner@example.com": ["c0", "c1", "c2"], "helper@example.com": ["h1", "h2"]})
    judgement = judge_read(fewer, GOOD, large_drop_fraction=0.5)
    assert judgement.verdict == "large_drop" and not judgement.good


def test_an_owner_whose_customers_all_vanished_is_held():
    emptied = shop({"owner@example.com": [f"c{i}" for i in range(10)], "helper@example.com": []})
    assert judge_read(emptied, GOOD).verdict == "large_drop"


def stamped(owners, prefix, created_at, backend_url="http://127.0.0.1:8000", mode="babs10"):
    """A read whose records all carry the server timestamp created_at, as the real server's do."""
    users = [{"id": f"{prefix}-{email}", "email": email, "created_at": created_at, "updated_at": created_at,
              "customers": [{"id": f"{prefix}-{email}-{name}", "name": name, "created_at": created_at,
                             "updated_at": created_at, "orders": []} for name in names]}
             for email, names in owners.items()]
    return Snapshot(users=users, meta={"backend_url": backend_url, "mode": mode})


BACKED_UP = stamped({"owner@example.com": ["c1", "c2", "c3"]}, "old", "2026-12-01T10:00:00.000000")
URL = "http://127.0.0.1:8000"


def test_an_empty_back_end_or_one_newer_than_the_backup_is_a_wipe():
    assert judge_read(shop({}), BACKED_UP, backend_url=URL).verdict == "wipe"
    signed_up_again = stamped({"owner@example.com": ["new one"]}, "new", "2026-12-01T10:20:00.000000")
    assert judge_read(signed_up_again, BACKED_UP, backend_url=URL).verdict == "wipe"


def test_unknown_records_older_than_the_backup_make_the_back_end_foreign():
    other_shop = stamped({"someone@example.com": ["Deleted Long Ago"]}, "other", "2026-11-20T08:00:00.000000")
    judgement = judge_read(other_shop, BACKED_UP, backend_url=URL)
    assert judgement.verdict == "foreign" and not judgement.good
    assert "older than the last good backup" in judgement.reason


def test_a_backup_from_another_back_end_or_a_legacy_file_makes_it_foreign():
    elsewhere = stamped({"owner@example.com": ["c1"]}, "old", "2026-12-01T10:00:00", "https://other.example.com")
    assert judge_read(shop({}), elsewhere, backend_url=URL).verdict == "foreign"
    # Another spelling of the same back end is the same back end.
    same = stamped({"owner@example.com": ["c1"]}, "old", "2026-12-01T10:00:00", "http://shop:pw@127.0.0.1:8000/")
    assert judge_read(shop({}), same, backend_url=URL).verdict == "wipe"
    legacy = stamped({"owner@example.com": ["c1"]}, "old", "2026-12-01T10:00:00", None, mode="legacy")
    assert judge_read(shop({}), legacy, backend_url=URL).verdict == "foreign"


def test_an_owner_whose_only_customer_vanished_is_held_not_deleted():
    backup = shop({"owner@example.com": ["c1", "c2"], "helper@example.com": ["h1"]})
    poisoned = shop({"owner@example.com": ["c1", "c2"], "helper@example.com": []})
    judgement = judge_read(poisoned, backup)
    assert judgement.verdict == "large_drop" and judgement.emptied_owners == ["helper@example.com"]
