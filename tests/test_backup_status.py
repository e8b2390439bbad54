"""backup_status.py: the verdict with the monitoring plugins' exit codes, quiet on stderr, never a token or a PIN.

The cases of issue 12 against the demo and the services as real processes, the demo under a non-UTC TZ.
"""

import json
import os

import pytest
import requests

from helpers import backup_now, command_env, free_port, make_settings, run_command, seed_shop, signs_in
from sleepguard.masking import describe_url
from sleepguard.pins import read_restored_pins, record_restored_pins
from service_helpers import FAST, shop_by_owner, seeded_view, wait_for, wait_until

STATUS = "backup_status.py"
START = "start_all_super_services.py"
CANARY = "canary-3f9a61e2d7"
PINS = [f"8{i}47{i}391" for i in range(3)]
LOCAL_ZONE = "America/Sao_Paulo"  # no daylight saving, three hours behind UTC: a clock in the wrong zone shows


@pytest.fixture
def local_tz(monkeypatch):
    """The demo, the services and the commands run in a zone that is not UTC."""
    monkeypatch.setenv("TZ", LOCAL_ZONE)


def status_of(env):
    """(exit code, the --json status, stderr) of one status look."""
    result = run_command(STATUS, "--json", env=env)
    return result.returncode, json.loads(result.stdout) if result.stdout else None, result.stderr


def reason_kinds(status):
    return [reason["kind"] for reason in status["verdict"]["reasons"]]


def start_services(env):
    started = run_command(START, env=env)
    assert started.returncode == 0, started.stdout + started.stderr


def test_with_nothing_set_up_it_says_no_backup_yet(data_dir):
    env = command_env(data_dir, "")
    screen = run_command(STATUS, env=env)
    assert screen.returncode == 2 and screen.stderr == ""  # NOT PROTECTED
    assert "no backup yet" in screen.stdout and screen.stdout.startswith("NOT PROTECTED")
    as_json = run_command(STATUS, "--json", env=env)
    assert as_json.returncode == 2
    status = json.loads(as_json.stdout)
    assert status["protected"] is False and status["last_good_backup"] is None
    assert status["verdict"]["code"] == 2 and status["verdict"]["verdict"] == "NOT PROTECTED"


def test_a_bad_setting_or_argument_is_unknown_exit_3_with_one_line(data_dir):
    result = run_command(STATUS, env=command_env(data_dir, "", BACKUP_INTERVAL="soon"))
    assert result.returncode == 3  # UNKNOWN, not argparse's or a command's usual 2
    assert "BACKUP_INTERVAL" in result.stderr and result.stdout == "" and result.stderr.count("\n") == 1
    wrong = run_command(STATUS, "--jsno", env=command_env(data_dir, ""))
    assert wrong.returncode == 3 and "unrecognized arguments: --jsno" in wrong.stderr


def test_neither_the_token_nor_a_pin_ever_shows(data_dir, start_demo, stopped_afterwards):
    demo = start_demo(token=CANARY)
    seed_shop(demo.url, users=3, customers=2, pin_of=lambda i: PINS[i])
    env = command_env(data_dir, demo.url, BACKEND_MODE="snapshot", API_TOKEN=CANARY, **FAST)
    started = run_command(START, env=env)
    assert started.returncode == 0, started.stdout + started.stderr

    def protected():
        return run_command(STATUS, env=env).returncode == 0

    wait_for(protected)
    record_restored_pins(data_dir, {"owner2@example.com": PINS[2]})
    screen = run_command(STATUS, env=env)
    as_json = run_command(STATUS, "--json", env=env)
    assert screen.returncode == as_json.returncode == 1  # WARNING: a new PIN to hand out
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


def test_a_loose_pin_file_never_holds_a_restore_up(data_dir, tmp_path, local_tz, start_demo, stopped_afterwards):
    demo = start_demo()
    shop = seed_shop(demo.url, users=3, customers=2)
    pins_file = tmp_path / "pins.json"
    pins_file.write_text(json.dumps({email: owner["pin"] for email, owner in shop.items()}))
    os.chmod(pins_file, 0o644)
    env = command_env(data_dir, demo.url, PINS_FILE=pins_file, **FAST)
    start_services(env)
    wait_until(lambda: status_of(env)[0] == 0, 20, "PROTECTED before the wipe")

    demo.sleep_now()
    # The normal time: a few restore checks, not the minutes of a back-off.
    wait_until(lambda: shop_by_owner(demo.url) == seeded_view(shop), 10, "the data back with new PINs")
    code, status, stderr = wait_until(lambda: (found := status_of(env))[0] == 1 and found, 10, "WARNING")
    assert stderr == "" and status["verdict"]["verdict"] == "WARNING"
    assert reason_kinds(status) == ["pins_to_hand_out", "pins_file_refused"]
    refused = status["verdict"]["reasons"][1]
    assert refused["users"] == 3 and "readable by others (mode 0644)" in refused["why"]
    new_pins = read_restored_pins(data_dir)
    assert sorted(new_pins) == sorted(shop) and all(signs_in(demo.url, email, pin) for email, pin in new_pins.items())
    screen = run_command(STATUS, env=env).stdout
    assert screen.startswith("WARNING") and "3 users need the new PIN" in screen
    # The whole path, however the screen wraps it.
    assert f"cat{data_dir / 'restored_pins.json'};" in "".join(screen.split())
    assert "--pins-handed-out [EMAIL ...]" in screen and "chmod 600" in screen
    assert not any(pin in screen for pin in new_pins.values())

    one = sorted(shop)[0]
    handed = run_command("restore_simple.py", "--pins-handed-out", one, env=env)
    assert handed.returncode == 0 and f"forgot the new PINs of 1 user: {one}" in handed.stdout
    assert status_of(env)[0] == 1 and sorted(read_restored_pins(data_dir)) == sorted(shop)[1:]
    rest = run_command("restore_simple.py", "--pins-handed-out", env=env)
    assert rest.returncode == 0 and "2 users" in rest.stdout and read_restored_pins(data_dir) == {}
    code, status, _ = status_of(env)
    assert code == 0, status["verdict"]


def legacy_file(path, users, customers):
    """A data_backup.json as the earlier scripts left it: no ids of this back end, no checksum."""
    path.write_text(json.dumps({"backup_created": "2025-08-21T02:23:11", "backup_type": "auto",
                                "users": [{"email": email} for email in users],
                                "customers": [{"name": name, "money_given": 1.0, "total_spent": 2.0, "orders": []}
                                              for name in customers]}))
    os.chmod(path, 0o600)


def assert_foreign_then_accepted(env, demo, data_dir):
    """Nothing is written into the back end, NOT PROTECTED names the fix; --accept-current makes it PROTECTED."""
    before = demo.state()
    code, status, stderr = wait_until(
        lambda: (found := status_of(env))[0] == 2 and "backend_foreign" in reason_kinds(found[1]) and found,
        20, "NOT PROTECTED for a foreign back end")
    assert stderr == "" and status["verdict"]["reasons"][0]["kind"] == "backend_foreign"
    screen = run_command(STATUS, env=env).stdout
    assert screen.startswith("NOT PROTECTED") and "manual_backup.py --accept-current" in screen
    assert all(len(line) < 100 for line in screen.splitlines()), screen
    assert demo.state() == before, "something was written into a back end the backup does not know"
    accepted = run_command("manual_backup.py", "--accept-current", env=env)
    assert accepted.returncode == 0 and accepted.stdout.startswith("backup good:"), accepted.stdout
    wait_until(lambda: status_of(env)[0] == 0, 20, "PROTECTED once the owner adopted the back end")
    assert demo.state() == before


def test_a_legacy_file_and_a_live_shop_restore_nothing(data_dir, local_tz, start_demo, stopped_afterwards):
    demo = start_demo()
    shop = seed_shop(demo.url, users=2, customers=2)
    owner = shop["owner0@example.com"]
    requests.post(f"{demo.url}/api/customers", params={"user_id": owner["id"]}, timeout=10,
                  json={"name": "Walk-in", "money_given": 0, "total_spent": 0, "orders": []}).raise_for_status()
    data_dir.mkdir(mode=0o700, exist_ok=True)
    legacy_file(data_dir / "data_backup.json", ["long.gone@example.com"], ["Deleted Long Ago"])
    listed = run_command("manual_backup.py", "--list", env=command_env(data_dir, demo.url))
    assert "legacy (no checksum)" in listed.stdout and " ok" not in listed.stdout.splitlines()[1]
    env = command_env(data_dir, demo.url, **FAST)
    start_services(env)
    screen = run_command(STATUS, env=env).stdout
    assert "legacy (no checksum)" in screen and "checksum ok" not in screen
    assert_foreign_then_accepted(env, demo, data_dir)
    assert "Deleted Long Ago" not in json.dumps(demo.state())


def test_a_data_dir_pointed_at_another_shop_restores_nothing(data_dir, local_tz, start_demo, stopped_afterwards):
    first, other = start_demo(), start_demo()
    seed_shop(first.url, users=2, customers=2, prefix="first")
    assert backup_now(make_settings(data_dir, first.url)).kind == "good"
    seed_shop(other.url, users=2, customers=3, prefix="other")
    env = command_env(data_dir, other.url, **FAST)
    start_services(env)
    assert_foreign_then_accepted(env, other, data_dir)


def test_the_status_is_of_the_back_end_the_services_watch(data_dir, start_demo, stopped_afterwards):
    watched, elsewhere = start_demo(), start_demo()
    seed_shop(watched.url, users=1, customers=1)
    start_services(command_env(data_dir, watched.url, **FAST))
    code, status, _ = wait_until(lambda: (found := status_of(command_env(data_dir, elsewhere.url)))[1]["backend"][
        "source"] == "services" and found, 20, "the status naming the watched back end")
    assert status["backend"]["url"] == watched.url and status["backend"]["settings_url"] == elsewhere.url
    screen = run_command(STATUS, env=command_env(data_dir, elsewhere.url)).stdout
    assert f"the services watch this one; BACKEND_URL in the settings is {elsewhere.url}" in screen


def test_a_foreign_back_end_is_one_alert_with_both_choices_and_nothing_restored(data_dir, start_demo, receiver,
                                                                                 stopped_afterwards):
    first, other = start_demo(), start_demo()
    seed_shop(first.url, users=2, customers=2, prefix="first")
    assert backup_now(make_settings(data_dir, first.url)).kind == "good"
    seed_shop(other.url, users=2, customers=3, prefix="other")
    before = other.state()
    env = command_env(data_dir, other.url, **FAST, ALERT_URLS=receiver.apprise_url, ALERT_AFTER="2",
                      ALERT_BATCH_SECONDS="0.2", ALERT_RETRY_SECONDS="0.2")
    start_services(env)
    foreign = "The back end holds data the backup does not know"

    def alerts():
        return [n["message"] for n in receiver.notifications() if foreign in n["message"]]
    wait_until(alerts, 30, "the 'foreign back end' alert")
    rounds = json.loads(run_command(STATUS, "--json", env=env).stdout)["services"][0]["iterations"]
    wait_until(lambda: json.loads(run_command(STATUS, "--json", env=env).stdout)["services"][0]["iterations"]
               >= rounds + 4, 30, "four more keep-alive rounds")
    (message,) = alerts()
    assert "--accept-current" in message and "restore_simple.py" in message
    assert other.state()["users"] == before["users"] and other.state()["customers"] == before["customers"]
