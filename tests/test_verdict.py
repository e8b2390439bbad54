"""The verdict: PROTECTED only when everything holds; each problem gives the right code and a reason with a fix."""

import pytest

from sleepguard.verdict import NOT_PROTECTED, PROTECTED, UNKNOWN, WARNING, judge, unknown
from sleepguard.wording import reason_lines

SERVICES = ("keep_alive_super_aggressive", "auto_backup_super_aggressive", "auto_restore_service")


def all_well(**changes):
    """The status dict of a protected shop, with some keys changed."""
    status = {
        "backend": {"configured": True, "reachable": True, "error": None},
        "services": [{"service": name, "state": "running"} for name in SERVICES],
        "last_good_backup": {"fresh": True, "age_seconds": 30, "fresh_limit_seconds": 360, "latest_file_ok": True,
                             "file": "data_backup.json"},
        "last_backup": {"kind": "unchanged"},
        "last_check": {"verdict": "unchanged"},
        "restore": {"running": False, "complete": None},
        "suspects_held": [],
        "pins_to_hand_out": [],
        "pins_problem": None,
    }
    status.update(changes)
    return status


def kinds(verdict):
    return [reason.kind for reason in verdict.reasons]


def test_everything_in_order_is_protected():
    verdict = judge(all_well())
    assert verdict.code == PROTECTED and verdict.word == "PROTECTED" and not verdict.reasons


@pytest.mark.parametrize("changes, kind", [
    ({"services": [{"service": SERVICES[0], "state": "running"}, {"service": SERVICES[1], "state": "stale"},
                   {"service": SERVICES[2], "state": "running"}]}, "service_down"),
    ({"last_good_backup": None}, "no_backup"),
    ({"last_good_backup": {"fresh": False, "age_seconds": 4000, "fresh_limit_seconds": 360}}, "backup_stale"),
    ({"last_backup": {"kind": "failed", "why": "connection refused"}}, "backup_failing"),
    ({"backend": {"configured": True, "reachable": False, "error": "timed out"}}, "backend_down"),
    ({"last_check": {"verdict": "wipe", "missing_customers": [("a@example.com", "x")]}}, "backend_wiped"),
    ({"last_check": {"verdict": "foreign", "reason": "older records"}}, "backend_foreign"),
    ({"last_check": {"verdict": "unknown", "reason": "502"}}, "backend_unknown"),
    ({"restore": {"running": False, "complete": False, "what": "3 failed"}}, "restore_failing"),
    ({"restore": {"running": True, "users_done": 37, "users_total": 200}}, "restoring"),
])
def test_data_not_safe_on_the_back_end_and_in_a_fresh_backup_is_not_protected(changes, kind):
    verdict = judge(all_well(**changes))
    assert verdict.code == NOT_PROTECTED and verdict.word == "NOT PROTECTED"
    assert kinds(verdict)[0] == kind
    text, fix = reason_lines(verdict.reasons[0])
    assert text and fix.startswith("fix: ") and all(len(line) < 100 for line in (text, fix))


@pytest.mark.parametrize("changes, kind", [
    ({"pins_to_hand_out": ["owner@example.com"]}, "pins_to_hand_out"),
    ({"suspects_held": [{"verdict": "large_drop", "file": "suspect-x.json"}]}, "large_drop_held"),
    ({"pins_file_problem": "PIN file pins.json is readable by others (mode 0644)"}, "pins_file_refused"),
    ({"offsite": {"waiting": 4, "max_behind": 3}}, "offsite_behind"),
])
def test_data_safe_but_the_owner_must_act_is_a_warning(changes, kind):
    verdict = judge(all_well(**changes))
    assert verdict.code == WARNING and kinds(verdict) == [kind]


def test_no_back_end_set_or_no_way_to_tell_is_unknown():
    assert judge(all_well(backend={"configured": False})).code == UNKNOWN
    assert judge(all_well(last_check={})).code == UNKNOWN
    assert unknown("BACKEND_URL must be an http:// or https:// URL").code == UNKNOWN


def test_the_worst_reason_decides_and_comes_first():
    verdict = judge(all_well(pins_to_hand_out=["owner@example.com"],
                             backend={"configured": True, "reachable": False, "error": "refused"}))
    assert verdict.code == NOT_PROTECTED and kinds(verdict) == ["backend_down", "pins_to_hand_out"]


def test_words_are_right_in_singular_and_plural():
    one = judge(all_well(pins_to_hand_out=["owner@example.com"])).reasons[0]
    two = judge(all_well(pins_to_hand_out=["a@example.com", "b@example.com"])).reasons[0]
    assert reason_lines(one)[0].startswith("1 user needs ") and reason_lines(two)[0].startswith("2 users need ")
