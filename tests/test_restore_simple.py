"""restore_simple.py as the owner runs it: a real subprocess against a real demo back end."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from counting_proxy import CountingProxy
from fault_proxy import FaultProxy
from helpers import (GUESSES, PROJECT_DIR, backup_now, command_env, customer_count, files_under, make_settings,
                     run_command, seed_shop, shop_view, signs_in)
from sleepguard.client import BackendClient
from sleepguard.pins import read_restored_pins, restored_pins_path

COMMAND = "restore_simple.py"


def backed_up_wiped_shop(demo, data_dir, users=3, customers=3):
    """Seed, back up, wipe; return (shop, admin state before the wipe)."""
    shop = seed_shop(demo.url, users=users, customers=customers)
    assert backup_now(make_settings(data_dir, demo.url)).kind == "good"
    before = demo.state()
    demo.sleep_now()
    return shop, before


def restore(demo, data_dir, *args, input=None):
    return run_command(COMMAND, *args, env=command_env(data_dir, demo.url), input=input)


def assert_no_pin_shown(result, pins):
    for pin in pins:
        assert pin not in result.stdout and pin not in result.stderr, "a PIN reached the output"


def write_legacy(data_dir, users, customers, name="old_backup.json"):
    path = data_dir / name
    path.write_text(json.dumps({"backup_created": "2025-08-21T02:23:11", "backup_type": "auto_backup_super",
                                "users": users, "customers": customers}))
    return path


def legacy_records(shop):
    """The users and the flat, ownerless customer list the earlier scripts wrote for this shop."""
    stamp = "2025-08-21T02:00:00"
    users = [{"id": owner["id"], "email": email, "created_at": stamp, "updated_at": stamp}
             for email, owner in sorted(shop.items())]
    customers = [customer for owner in shop.values() for customer in owner["customers"].values()]
    return users, customers


def test_wipe_then_restore_brings_everything_back_with_own_pins_and_never_prints_one(demo_backend, data_dir):
    shop, before = backed_up_wiped_shop(demo_backend, data_dir)
    emails = sorted(shop)
    pins_file = data_dir / "pins.json"
    pins_file.write_text(json.dumps({email: shop[email]["pin"] for email in emails[:2]}))
    os.chmod(pins_file, 0o600)
    result = restore(demo_backend, data_dir, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    after = demo_backend.state()
    assert shop_view(after) == shop_view(before) and customer_count(after) == customer_count(before)
    restored = read_restored_pins(data_dir)
    assert list(restored) == [emails[2]]
    assert f"new PINs for {emails[2]} are in {restored_pins_path(data_dir)}" in result.stdout
    assert "verified: the back end holds every user and customer of the backup" in result.stdout
    assert_no_pin_shown(result, [owner["pin"] for owner in shop.values()] + list(restored.values()))
    pins = {**{email: shop[email]["pin"] for email in emails[:2]}, **restored}
    for email in emails:
        assert signs_in(demo_backend.url, email, pins[email])
        for wrong in [pin for other, pin in pins.items() if other != email] + [shop[emails[2]]["pin"], *GUESSES]:
            assert not signs_in(demo_backend.url, email, wrong), f"{email} accepts a PIN it was not given"


def test_dry_run_prints_the_plan_and_changes_nothing(demo_backend, data_dir):
    backed_up_wiped_shop(demo_backend, data_dir, users=2, customers=2)
    seed_shop(demo_backend.url, users=1, customers=1, pin_of=lambda i: "8642")  # owner0 signed up again
    state = demo_backend.state()
    result = restore(demo_backend, data_dir, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "create user owner1@example.com (new random PIN, kept in restored_pins.json to hand out)" in result.stdout
    assert "create customer 'Customer 1 of owner0' of owner0@example.com (1 orders)" in result.stdout
    assert "leave 1 users and 1 customers the back end already has as they are" in result.stdout
    assert "dry run: nothing was changed" in result.stdout
    assert demo_backend.state() == state
    assert not restored_pins_path(data_dir).exists()


def test_without_a_yes_nothing_is_restored_and_the_exit_code_says_so(demo_backend, data_dir):
    backed_up_wiped_shop(demo_backend, data_dir, users=2, customers=1)
    for answer in (None, "n\n"):
        result = restore(demo_backend, data_dir, input=answer)
        assert result.returncode == 1, result.stdout
        assert "Restore 2 users and 2 customers into http://" in result.stdout and "aborted" in result.stdout
        assert demo_backend.state()["users"] == []
    result = restore(demo_backend, data_dir, input="y\n")
    assert result.returncode == 0 and len(demo_backend.state()["users"]) == 2


def test_a_pin_file_readable_by_others_is_refused_in_one_line_and_nothing_is_written(demo_backend, data_dir):
    shop, before = backed_up_wiped_shop(demo_backend, data_dir, users=2, customers=1)
    pins_file = data_dir / "pins.json"
    pins_file.write_text(json.dumps({email: owner["pin"] for email, owner in shop.items()}))
    os.chmod(pins_file, 0o644)
    result = restore(demo_backend, data_dir, "--yes")
    assert result.returncode == 2
    expected = f"PIN file {pins_file} is readable by others (mode 0644): chmod 600 it"
    assert result.stderr == f"restore_simple.py: error: {expected}\n"
    assert_no_pin_shown(result, [owner["pin"] for owner in shop.values()])
    assert demo_backend.state()["users"] == [] and not restored_pins_path(data_dir).exists()


def test_a_file_outside_data_dir_is_refused_in_one_line(demo_backend, data_dir, tmp_path):
    outside = tmp_path / "elsewhere.json"
    outside.write_text("{}")
    result = restore(demo_backend, data_dir, "--file", str(outside), "--yes")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "is outside DATA_DIR" in result.stderr


def test_no_backup_at_all_is_a_clear_error(demo_backend, data_dir):
    result = restore(demo_backend, data_dir, "--yes")
    assert result.returncode == 2 and result.stderr.startswith("restore_simple.py: error: no good backup in ")


def test_a_history_file_can_be_chosen_with_file(demo_backend, data_dir):
    shop, before = backed_up_wiped_shop(demo_backend, data_dir, users=1, customers=2)
    history = next((data_dir / "auto_backups_super").glob("backup-*.json"))
    (data_dir / "data_backup.json").write_text("{damaged")
    result = restore(demo_backend, data_dir, "--file", str(history), "--yes")
    assert result.returncode == 0, result.stderr
    assert shop_view(demo_backend.state()) == shop_view(before)


def test_a_damaged_data_backup_falls_back_to_the_newest_good_history_file(demo_backend, data_dir):
    shop, before = backed_up_wiped_shop(demo_backend, data_dir, users=1, customers=2)
    (data_dir / "data_backup.json").write_text('{"format": "sleepguard-backup", "trunc')
    result = restore(demo_backend, data_dir, "--yes")
    assert result.returncode == 0, result.stderr
    assert f"backup: {data_dir / 'auto_backups_super'}/backup-" in result.stdout
    assert shop_view(demo_backend.state()) == shop_view(before)


def test_a_legacy_file_with_one_user_gives_that_user_every_customer(demo_backend, data_dir):
    shop, before = backed_up_wiped_shop(demo_backend, data_dir, users=1, customers=3)
    users, customers = legacy_records(shop)
    path = write_legacy(data_dir, users, customers)
    result = restore(demo_backend, data_dir, "--file", str(path), "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert shop_view(demo_backend.state()) == shop_view(before)


def test_a_legacy_file_with_several_users_needs_owner_to_place_its_customers(demo_backend, data_dir):
    shop, before = backed_up_wiped_shop(demo_backend, data_dir, users=2, customers=2)
    users, customers = legacy_records(shop)
    path = write_legacy(data_dir, users, customers)  # customers as the API gave them: no owner field
    result = restore(demo_backend, data_dir, "--file", str(path), "--yes")
    assert result.returncode == 1
    assert result.stdout.count("several users and does not say whose customer it is: use --owner EMAIL") == 4
    assert "4 customers the file gives no owner (use --owner EMAIL)" in result.stdout
    assert demo_backend.state()["customers"] == [] and len(demo_backend.state()["users"]) == 2
    dry = restore(demo_backend, data_dir, "--file", str(path), "--dry-run")
    assert dry.stdout.count("does not say whose customer it is: use --owner EMAIL") == 4, dry.stdout
    owner = sorted(shop)[1]
    result = restore(demo_backend, data_dir, "--file", str(path), "--owner", owner, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    view = shop_view(demo_backend.state())
    assert sorted(view[owner]) == sorted(name for o in shop.values() for name in o["customers"])
    assert view[sorted(shop)[0]] == {}


def test_a_legacy_file_whose_user_has_no_id_keeps_her_customers(demo_backend, data_dir):
    shop, before = backed_up_wiped_shop(demo_backend, data_dir, users=1, customers=3)
    users, customers = legacy_records(shop)
    # A hand-made file: the user without an id, her customers pointing at none.
    users = [{"email": user["email"].replace("@example.com", "@Example.COM")} for user in users]
    customers = [{k: v for k, v in customer.items() if k != "user_id"} for customer in customers]
    path = write_legacy(data_dir, users, customers)
    result = restore(demo_backend, data_dir, "--file", str(path), "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verified" in result.stdout.splitlines()[-1]
    assert shop_view(demo_backend.state()) == shop_view(before)


def test_a_legacy_file_of_several_users_without_ids_needs_owner_and_is_never_verified_without_it(demo_backend,
                                                                                                data_dir):
    shop, before = backed_up_wiped_shop(demo_backend, data_dir, users=2, customers=2)
    users, customers = legacy_records(shop)
    users = [{"email": user["email"]} for user in users]
    path = write_legacy(data_dir, users, customers)
    result = restore(demo_backend, data_dir, "--file", str(path), "--yes")
    assert result.returncode == 1 and "verified" not in result.stdout
    assert "4 customers the file gives no owner (use --owner EMAIL)" in result.stdout
    owner = sorted(shop)[1]
    result = restore(demo_backend, data_dir, "--file", str(path), "--owner", owner.upper().replace("OWNER", "owner"),
                     "--yes")
    assert result.returncode == 0 and "verified" in result.stdout, result.stdout + result.stderr
    assert sorted(shop_view(demo_backend.state())[owner]) == sorted(n for o in shop.values() for n in o["customers"])


def test_pins_carried_by_a_hand_made_legacy_file_are_used(demo_backend, data_dir):
    shop, before = backed_up_wiped_shop(demo_backend, data_dir, users=2, customers=1)
    users, customers = legacy_records(shop)
    users = [{**user, "pin": shop[user["email"]]["pin"]} for user in users]
    path = write_legacy(data_dir, users, [])
    result = restore(demo_backend, data_dir, "--file", str(path), "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_no_pin_shown(result, [owner["pin"] for owner in shop.values()])
    for email, owner in shop.items():
        assert signs_in(demo_backend.url, email, owner["pin"])
    assert not restored_pins_path(data_dir).exists()


# --- two reads at most ---

def test_a_restore_reads_the_back_end_twice_at_most(demo_backend, data_dir):
    shop, before = backed_up_wiped_shop(demo_backend, data_dir, users=4, customers=2)
    with CountingProxy(demo_backend.url) as proxy:
        with BackendClient(make_settings(data_dir, proxy.url)) as client:
            client.read_snapshot()
        per_read = proxy.count("GET", "/api/users")
        proxy.reset()
        result = run_command(COMMAND, "--yes", env=command_env(data_dir, proxy.url))
        assert result.returncode == 0, result.stdout + result.stderr
        assert 1 <= proxy.count("GET", "/api/users") <= 2 * per_read
    assert shop_view(demo_backend.state()) == shop_view(before)


# --- Ctrl-C, no stdin, a disk that takes no more ---

def start_restore(data_dir, url, *args, **popen):
    return subprocess.Popen([sys.executable, str(PROJECT_DIR / COMMAND), *args], cwd=PROJECT_DIR,
                            env=command_env(data_dir, url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)


def wait_for(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        time.sleep(0.02)


def users_on(url):
    return sorted(user["email"] for user in requests.get(f"{url}/api/users", timeout=10).json())


def test_ctrl_c_lets_the_requests_in_flight_finish_keeps_the_pins_of_exactly_the_accounts_created(demo_backend,
                                                                                                   data_dir):
    shop, before = backed_up_wiped_shop(demo_backend, data_dir, users=100, customers=1)
    with FaultProxy(demo_backend.url) as proxy:
        proxy.set_fault("latency", latency=0.02)  # a host a little further away: the restore takes a while
        process = start_restore(data_dir, proxy.url, "--yes")
        try:
            wait_for(lambda: len(users_on(demo_backend.url)) >= 10, 30, "user restored")
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=30)
        finally:
            process.kill()
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    found = re.search(r"^interrupted: (\d+) of 100 users and (\d+) of 100 customers restored; "
                      r"run restore_simple\.py again to finish the job$", stdout, re.M)
    assert found, stdout
    created = users_on(demo_backend.url)
    assert int(found[1]) == len(created) < 100
    assert sorted(read_restored_pins(data_dir)) == created, "restored_pins.json must hold exactly the accounts created"
    assert stderr.count("\n") == 1 and "stopping: nothing new starts, the requests in flight finish" in stderr
    pins = read_restored_pins(data_dir)
    again = restore(demo_backend, data_dir, "--yes")
    assert again.returncode == 0 and "verified: the back end holds every user" in again.stdout, again.stdout
    assert shop_view(demo_backend.state()) == shop_view(before)
    assert sorted(read_restored_pins(data_dir)) == sorted(shop)
    assert all(read_restored_pins(data_dir)[email] == pin for email, pin in pins.items())


def test_a_second_ctrl_c_quits_at_once(demo_backend, data_dir):
    backed_up_wiped_shop(demo_backend, data_dir, users=3, customers=2)
    with FaultProxy(demo_backend.url) as proxy:
        proxy.set_fault("hang", path_prefix="/api/customers")  # the customers' POSTs get no answer
        process = start_restore(data_dir, proxy.url, "--yes")
        try:
            # Owner by owner: the first owner's account, then its customers' POSTs, which hang.
            wait_for(lambda: len(users_on(demo_backend.url)) == 1, 30, "the first owner restored")
            wait_for(lambda: proxy.open_connections >= 1 and proxy.requests_seen >= 1 + 2, 30, "a customer POST")
            process.send_signal(signal.SIGINT)
            line = process.stderr.readline()
            assert "Ctrl-C again to quit at once" in line, line
            process.send_signal(signal.SIGINT)
            # At once: well before the first Ctrl-C's grace (5 s) or the hanging requests would end it.
            process.wait(3)
            stderr = process.stderr.read()
        finally:
            process.kill()
            process.communicate()
    assert process.returncode == 130
    assert stderr.startswith("restore_simple.py: quit at once") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    assert sorted(read_restored_pins(data_dir)) == users_on(demo_backend.url), "a created account lost its PIN"


def test_no_stdin_means_no_confirmation_nothing_done_use_yes(demo_backend, data_dir):
    backed_up_wiped_shop(demo_backend, data_dir, users=2, customers=1)
    before = files_under(data_dir)
    for how in ({"preexec_fn": lambda: os.close(0)}, {"stdin": subprocess.DEVNULL}):  # closed, at its end
        process = start_restore(data_dir, demo_backend.url, **how)
        stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == 1, stdout + stderr
        assert stderr.count("\n") == 1 and "use --yes" in stderr and "Traceback" not in stderr, stderr
        assert "aborted: nothing was changed" in stdout
        assert demo_backend.state()["users"] == [] and files_under(data_dir) == before


def test_a_file_size_limit_is_one_line_and_nothing_half_written(demo_backend, data_dir):
    backed_up_wiped_shop(demo_backend, data_dir, users=2, customers=1)
    before = files_under(data_dir)
    command = f"ulimit -f 0; exec {sys.executable} {PROJECT_DIR / COMMAND} --yes"
    result = subprocess.run(["bash", "-c", command], cwd=PROJECT_DIR, env=command_env(data_dir, demo_backend.url),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("restore_simple.py: error: could not write")
    assert demo_backend.state()["users"] == [], "an account was created without its PIN on disk"
    assert files_under(data_dir) == before


def test_ctrl_c_at_the_question_is_no_and_changes_nothing(demo_backend, data_dir):
    backed_up_wiped_shop(demo_backend, data_dir, users=2, customers=1)
    process = start_restore(data_dir, demo_backend.url, stdin=subprocess.PIPE)
    try:
        assert process.stdout.readline().startswith("backup: ")
        asked = ""
        while not asked.endswith("[y/N] "):
            asked += process.stdout.read(1) or pytest.fail(f"no question, got {asked!r}")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 1 and "aborted: nothing was changed" in stdout
    assert stderr == "", stderr
    assert demo_backend.state()["users"] == [] and not restored_pins_path(data_dir).exists()


# --- from an off-site copy ---

def test_from_offsite_restores_the_chosen_copy_with_a_dry_run_first_and_at_picks_an_older_one(demo_backend, data_dir,
                                                                                              moto_s3, tmp_path):
    from offsite_helpers import PREFIX, new_identity, offsite_settings, write_pins
    from sleepguard.offsite_copies import drain_queue
    from sleepguard.offsite_queue import queue_copy
    identity, recipient = new_identity(tmp_path / "keys")
    shop = seed_shop(demo_backend.url, users=2, customers=2)
    pins = write_pins(tmp_path / "pins.json", {email: owner["pin"] for email, owner in shop.items()})
    settings = offsite_settings(data_dir, moto_s3, recipient, str(identity), BACKEND_URL=demo_backend.url,
                                PINS_FILE=pins)
    older = backup_now(settings)
    queue_copy(settings, older.path)
    seed_shop(demo_backend.url, users=1, customers=1, prefix="later")
    newer = backup_now(settings)
    queue_copy(settings, newer.path)
    assert drain_queue(settings).waiting == 0
    demo_backend.sleep_now()
    pins.unlink()
    fresh = tmp_path / "new-machine"
    fresh.mkdir(mode=0o700)
    env = command_env(fresh, demo_backend.url, OFFSITE_URL=f"s3://{moto_s3.bucket}/{PREFIX}",
                      OFFSITE_ENDPOINT_URL=moto_s3.url, OFFSITE_RECIPIENT=recipient, OFFSITE_IDENTITY_FILE=str(identity))
    dry = run_command(COMMAND, "--from-offsite", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("backup: off-site copy backup-") and "(3 users, 5 customers" in dry.stdout
    assert requests.get(f"{demo_backend.url}/api/users", timeout=10).json() == []
    # The dry run plans with the PINs the copy carries, and writes none of them: it changed nothing.
    assert all(f"create user {email} (PIN from the PIN file)" in dry.stdout for email in shop), dry.stdout
    assert "dry run: nothing was changed" in dry.stdout and sorted(fresh.iterdir()) == [], sorted(fresh.iterdir())
    at = older.path.name.split("-")[1]  # the older backup's own time, as its file name says it
    moment = f"{at[:4]}-{at[4:6]}-{at[6:8]}T{at[9:11]}:{at[11:13]}:{at[13:15]}.{at[16:22]}+00:00"
    done = run_command(COMMAND, "--from-offsite", "--at", moment, "--yes", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(2 users, 4 customers" in done.stdout
    users = requests.get(f"{demo_backend.url}/api/users", timeout=10).json()
    assert sorted(user["email"] for user in users) == sorted(shop)
    for email, owner in shop.items():
        assert signs_in(demo_backend.url, email, owner["pin"]), f"{email} lost their PIN"
    bad = run_command(COMMAND, "--from-offsite", "--at", "yesterday", env=env)
    assert bad.returncode == 2 and "is not a time" in bad.stderr and bad.stderr.count("\n") == 1
    alone = run_command(COMMAND, "--at", moment, env=env)
    assert alone.returncode == 2 and "--from-offsite" in alone.stderr


def test_money_the_backup_holds_as_null_is_left_out_said_and_the_summary_gives_the_first_owner(demo_backend,
                                                                                               data_dir):
    url = demo_backend.url
    shop = seed_shop(url, users=2, customers=2)
    owner = sorted(shop)[0]
    for name in ("Nan one", "Inf one"):
        # The real server takes a non-finite number and reads it back as null.
        body = json.dumps({"name": name, "money_given": float("nan"), "total_spent": float("inf")})
        requests.post(f"{url}/api/customers", params={"user_id": shop[owner]["id"]}, data=body, timeout=10,
                      headers={"Content-Type": "application/json"}).raise_for_status()
    assert backup_now(make_settings(data_dir, url)).kind == "good"
    demo_backend.sleep_now()
    result = restore(demo_backend, data_dir, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    summary = next(line for line in lines if line.startswith("restore: "))
    assert re.fullmatch(r"restore: 2 users, 6 customers created, 0 failed in \d+\.\d s; first owner "
                        r"\(o\*\*\*\d@example\.com\) back after \d+\.\d s", summary), summary
    # In the order they are re-created: the owner's own.
    assert (f"warning: 2 customers restored without a money field the backup had as null: customer 'Nan one' of "
            f"{owner} (money_given, total_spent), customer 'Inf one' of {owner} (money_given, total_spent); the "
            "server's default 0 applies") in lines, lines
    # Not poisoned: the owner's list shows every customer.
    assert len(shop_view(demo_backend.state())[owner]) == 4 and lines[-1].startswith("verified")


def test_a_second_restore_beside_a_running_one_says_so_and_changes_nothing(demo_backend, data_dir,
                                                                           restore_held_elsewhere):
    backed_up_wiped_shop(demo_backend, data_dir, users=2, customers=1)
    before = files_under(data_dir)
    result = restore(demo_backend, data_dir, "--yes")
    assert result.returncode == 2 and result.stdout.count("\n") == 1, result.stdout + result.stderr
    assert result.stderr == (f"restore_simple.py: error: a restore is already running (PID "
                             f"{restore_held_elsewhere.pid}): wait for it to end\n")
    assert demo_backend.state()["users"] == [] and files_under(data_dir) == before
    assert restore(demo_backend, data_dir, "--dry-run").returncode == 0, "a dry run changes nothing: it may look"


def test_pins_handed_out_forgets_them_and_a_name_with_no_pin_waiting_is_one_line(data_dir):
    from sleepguard.pins import record_restored_pins
    record_restored_pins(data_dir, {"anna@example.com": "481920", "bob@example.com": "730155"})
    env = command_env(data_dir, "")
    wrong = run_command("restore_simple.py", "--pins-handed-out", "carl@example.com", env=env)
    assert wrong.returncode == 2 and wrong.stdout == "" and wrong.stderr.count("\n") == 1
    assert "no new PIN is waiting for carl@example.com" in wrong.stderr and "481920" not in wrong.stderr
    done = run_command("restore_simple.py", "--pins-handed-out", "anna@example.com", env=env)
    assert done.returncode == 0 and done.stdout == "forgot the new PINs of 1 user: anna@example.com\n"
    assert sorted(read_restored_pins(data_dir)) == ["bob@example.com"]
    assert run_command("restore_simple.py", "--pins-handed-out", env=env).returncode == 0
    assert read_restored_pins(data_dir) == {}
