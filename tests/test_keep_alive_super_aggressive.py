"""The keep-alive command as its user runs it: help, one-line errors, and one copy at a time."""

import pytest

from helpers import command_env, run_command
from service_helpers import Services, assert_one_line_error, wait_until
from sleepguard.runner import read_state

COMMAND = "keep_alive_super_aggressive.py"
SERVICE = "keep_alive_super_aggressive"


@pytest.fixture
def services():
    with Services() as started:
        yield started


def test_help_gives_the_usage_and_starts_nothing(data_dir):
    result = run_command(COMMAND, "--help", env=command_env(data_dir))
    assert result.returncode == 0 and "usage: keep_alive_super_aggressive.py" in result.stdout
    assert list(data_dir.iterdir()) == []


def test_a_bad_setting_is_one_line_and_a_non_zero_exit(demo_backend, data_dir):
    result = run_command(COMMAND, env=command_env(data_dir, demo_backend.url, KEEP_ALIVE_INTERVAL="often"))
    assert_one_line_error(result, COMMAND, "KEEP_ALIVE_INTERVAL", "'often'")


def test_without_a_back_end_it_says_what_to_set(data_dir):
    assert_one_line_error(run_command(COMMAND, env=command_env(data_dir)), COMMAND, "BACKEND_URL is not set")


def test_a_second_copy_refuses_and_the_first_keeps_running(services, demo_backend, data_dir):
    env = command_env(data_dir, demo_backend.url)
    first = services.start(SERVICE, env)
    wait_until(lambda: read_state(data_dir, SERVICE), 10, "the first copy's first iteration")
    second = run_command(COMMAND, env=env, timeout=20)
    assert_one_line_error(second, COMMAND, f"{SERVICE} is already running (PID {first.pid})")
    assert first.poll() is None and read_state(data_dir, SERVICE)["pid"] == first.pid
