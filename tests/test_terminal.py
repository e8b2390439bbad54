"""The restore command's question and Ctrl-C handler, in-process (the subprocess runs are in test_restore_simple.py)."""

import io
import signal

import pytest

from helpers import api_snapshot
from sleepguard.plan import plan_restore
from sleepguard.terminal import Terminal

PLAN = plan_restore(api_snapshot({"a@example.com": ["Maria"]}), api_snapshot({}), {}, target="http://shop.example.com")


@pytest.fixture
def terminal(monkeypatch):
    """A Terminal, with the test process's own SIGINT handler put back afterwards."""
    previous = signal.getsignal(signal.SIGINT)
    yield Terminal("restore_simple.py")
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("typed, yes", [("y\n", True), ("YES\n", True), ("n\n", False), ("\n", False)])
def test_only_yes_is_yes(terminal, monkeypatch, capsys, typed, yes):
    monkeypatch.setattr("sys.stdin", io.StringIO(typed))
    assert terminal.confirm(PLAN) is yes
    assert capsys.readouterr().out == "Restore 1 users and 1 customers into http://shop.example.com? [y/N] "


@pytest.mark.parametrize("stdin", [None, io.StringIO("")], ids=["closed", "at its end"])
def test_no_stdin_is_no_with_a_line_saying_use_yes(terminal, monkeypatch, capfd, stdin):
    monkeypatch.setattr("sys.stdin", stdin)
    assert terminal.confirm(PLAN) is False
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "use --yes" in err


def test_the_first_ctrl_c_sets_stopping_and_nothing_is_asked_after_it(terminal, monkeypatch, capfd):
    assert signal.getsignal(signal.SIGINT) is terminal
    with terminal:
        terminal(signal.SIGINT, None)
        assert terminal.stopping.is_set()
        assert "Ctrl-C again to quit at once" in capfd.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert terminal.confirm(PLAN) is False
    assert terminal.timer.finished.is_set(), "the grace timer outlived the restore"


def test_told_not_to_ask_it_says_yes_without_reading(monkeypatch):
    previous = signal.getsignal(signal.SIGINT)
    try:
        monkeypatch.setattr("sys.stdin", None)
        assert Terminal("restore_simple.py", ask=False).confirm(PLAN) is True
    finally:
        signal.signal(signal.SIGINT, previous)
