"""The sentences about plans and restores: every action said, never a PIN, and flags named only here."""

import re
from pathlib import Path

from helpers import api_snapshot, legacy_snapshot
from sleepguard.apply import RestoreReport, RestoreResult
from sleepguard.plan import plan_restore
from sleepguard.wording import confirmation_question, describe_plan, describe_report

PACKAGE = Path(__file__).resolve().parent.parent / "sleepguard"
FLAG = re.compile(r"--(owner|file|yes|accept-shrink|accept-current|pins-handed-out)\b")
# Modules of other helpers that still name a flag themselves; each is to take its hint from wording.py instead.
NOT_MOVED_YET = set()


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


def test_customers_a_legacy_file_cannot_attribute_are_skipped_saying_use_owner():
    backup = legacy_snapshot(["a@example.com", "b@example.com"], ["Maria", "Chen"])
    lines = describe_plan(plan_restore(backup, api_snapshot({}), {}))
    assert sum("skip customer" in line and "use --owner EMAIL" in line for line in lines) == 2


def test_the_question_names_the_counts_and_the_target():
    plan = plan_restore(api_snapshot({"a@example.com": ["Maria", "Chen"]}), api_snapshot({}), {},
                        target="http://shop.example.com")
    assert confirmation_question(plan) == "Restore 1 users and 2 customers into http://shop.example.com? [y/N] "


def test_an_interrupted_restore_says_how_much_came_back_and_that_running_it_again_finishes():
    plan = plan_restore(api_snapshot({f"u{i}@example.com": ["Maria"] for i in range(3)}), api_snapshot({}), {})
    report = RestoreReport(plan=plan, result=RestoreResult(users_created=2, customers_created=1), interrupted=True)
    lines = describe_report(report)
    assert lines[-1] == ("interrupted: 2 of 3 users and 1 of 3 customers restored; run restore_simple.py again to "
                         "finish the job")
    assert not any(line.startswith(("verified", "NOT COMPLETE")) for line in lines)


def test_no_module_of_the_library_but_wording_names_a_flag():
    naming = {path.name for path in PACKAGE.glob("*.py") if FLAG.search(path.read_text())}
    assert "wording.py" in naming, "the pattern no longer finds the hints"
    assert naming - {"wording.py"} <= NOT_MOVED_YET, "a module names a command-line flag: take the hint from wording"


def test_times_are_local_with_their_zone_and_counts_are_singular_or_plural(monkeypatch):
    import time
    from datetime import datetime, timezone

    from sleepguard.wording import counts_text, local_time
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        now = datetime(2026, 12, 1, 12, 58, tzinfo=timezone.utc)
        assert local_time("2026-12-01T12:58:00Z", now) == "13:58 CET"
        assert local_time("2026-11-30T12:58:00Z", now) == "2026-11-30 13:58 (+01:00)"
    finally:
        monkeypatch.undo()
        time.tzset()
    assert counts_text({"users": 1, "customers": 5, "orders": 1}) == "1 user, 5 customers, 1 order"
