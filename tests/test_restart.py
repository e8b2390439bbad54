"""The restart rules every service asks, as pure functions, and the wake that is kept until delivered."""

import pytest

from sleepguard.restart import PendingWake, came_back, counter_went_down, users_vanished, vanished_during_read


@pytest.mark.parametrize("failures, latency, since_last_ok, last_was_slow, expected", [
    (0, 0.1, 1.0, False, ""),
    (1, 0.1, 1.0, False, "back end answered again after 1 failure"),
    (3, 9.0, 1.0, True, "back end answered again after 3 failures"),
    (0, 9.0, None, False, "back end answered slowly (9.00 s, a cold start?)"),
    (0, 9.0, 1.0, False, "back end answered slowly (9.00 s, a cold start?)"),
    (0, 9.0, 1.0, True, ""),  # steadily slow: not one cold start per ping
    (0, 9.0, 2.5, True, "back end answered slowly (9.00 s, a cold start?)"),  # pings stopped for a while
])
def test_came_back(failures, latency, since_last_ok, last_was_slow, expected):
    assert came_back(failures, latency, 5.0, since_last_ok, last_was_slow, interval=1.0) == expected


def test_counter_went_down():
    assert counter_went_down(3, 0) and counter_went_down(3, 2)
    assert not counter_went_down(None, 0) and not counter_went_down(0, 0) and not counter_went_down(2, 5)
    assert not counter_went_down(2, None)


def test_users_vanished_needs_users_and_none_of_them_listed():
    assert users_vanished({"a", "b"}, set())
    assert users_vanished({"a", "b"}, {"c"})  # the owner signed up again: a new id
    assert not users_vanished({"a", "b"}, {"b", "c"})
    assert not users_vanished(set(), set())


def test_vanished_during_read():
    assert vanished_during_read({"a", "b"}, {"b", "c"}) == {"a"}
    assert vanished_during_read({"a"}, {"a", "b"}) == set()


def test_a_wake_nobody_took_is_kept_for_the_next_try(tmp_path):
    wake = PendingWake(tmp_path)
    assert wake.deliver() is False and wake.sent == 0
    assert wake.ask("back end restarted") is False
    assert wake.pending == "back end restarted" and wake.sent == 0
    assert wake.deliver() is False and wake.pending == "back end restarted"


def test_a_slow_answer_during_our_own_restore_is_never_a_cold_start_but_failures_still_are():
    assert came_back(0, 9.0, 5.0, None, False, interval=1.0, restoring=True) == ""
    assert came_back(2, 9.0, 5.0, None, False, interval=1.0, restoring=True) == \
        "back end answered again after 2 failures"
