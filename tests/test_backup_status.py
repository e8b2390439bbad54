"""backup_status.py: one screen, --json for scripts, exit 0 only when protected, never a token or a PIN."""

import json

from helpers import command_env, free_port, run_command, seed_shop
from sleepguard.masking import describe_url
from sleepguard.pins import record_restored_pins
from service_helpers import FAST, wait_for

STATUS = "backup_status.py"
CANARY = "canary-3f9a61e2d7"
PINS = [f"8{i}47{i}391" for i in range(3)]


def test_with_nothing_set_up_it_says_no_backup_yet(data_dir):
    env = command_env(data_dir, "")
    screen = run_command(STATUS, env=env)
    assert screen.returncode == 1
    assert "no backup yet" in screen.stdout and screen.stdout.rstrip().endswith("NOT PROTECTED")
    as_json = run_command(STATUS, "--json", env=env)
    assert as_json.returncode == 1
    status = json.loads(as_json.stdout)
    assert status["protected"] is False and status["last_good_backup"] is None


def test_a_bad_setting_exits_2_with_one_line(data_dir):
    result = run_command(STATUS, env=command_env(data_dir, "", BACKUP_INTERVAL="soon"))
    assert result.returncode == 2
    assert "BACKUP_INTERVAL" in result.stderr and result.stdout == ""


def test_neither_the_token_nor_a_pin_ever_shows(data_dir, start_demo, stopped_afterwards):
    demo = start_demo(token=CANARY)
    seed_shop(demo.url, users=3, customers=2, pin_of=lambda i: PINS[i])
    env = command_env(data_dir, demo.url, BACKEND_MODE="snapshot", API_TOKEN=CANARY, **FAST)
    started = run_command("start_all_super_services.py", env=env)
    assert started.returncode == 0, started.stdout + started.stderr
    record_restored_pins(data_dir, {"owner2@example.com": PINS[2]})

    def protected():
        return run_command(STATUS, env=env).returncode == 0

    wait_for(protected)
    screen = run_command(STATUS, env=env)
    as_json = run_command(STATUS, "--json", env=env)
    assert "3 users, 6 customers" in screen.stdout
    assert json.loads(as_json.stdout)["pins_to_hand_out"] == ["owner2@example.com"]
    for output in (started.stdout, started.stderr, screen.stdout, screen.stderr, as_json.stdout, as_json.stderr):
        assert CANARY not in output
        assert not any(pin in output for pin in PINS)


def test_test_alert_says_per_url_delivered_or_why_not_and_exits_0_only_when_each_delivered(data_dir, receiver):
    nobody = f"json://127.0.0.1:{free_port()}/"
    env = command_env(data_dir, "", ALERT_URLS=f"{receiver.apprise_url} {nobody}", ALERT_TIMEOUT="5")
    both = run_command(STATUS, "--test-alert", env=env)
    assert both.returncode == 1, both.stdout + both.stderr
    assert both.stdout.splitlines()[0] == f"{describe_url(receiver.apprise_url)}: delivered"
    assert both.stdout.splitlines()[1].startswith(f"{describe_url(nobody)}: NOT delivered: ")
    assert nobody not in both.stdout and receiver.apprise_url not in both.stdout and both.stderr == ""
    assert [n["title"] for n in receiver.notifications()] == ["sleepguard: test alert"]
    one = run_command(STATUS, "--test-alert", env=command_env(data_dir, "", ALERT_URLS=receiver.apprise_url))
    assert one.returncode == 0 and one.stdout == f"{describe_url(receiver.apprise_url)}: delivered\n"


def test_test_alert_without_a_url_is_one_line_naming_the_setting(data_dir):
    result = run_command(STATUS, "--test-alert", env=command_env(data_dir, ""))
    assert result.returncode != 0 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "ALERT_URLS" in result.stderr
