"""manual_backup.py as the owner runs it: one backup now, --list, failures that touch nothing, private files."""

import os
import resource
import stat
import subprocess
import sys

import pytest

from fault_proxy import FaultProxy
from helpers import PROJECT_DIR, backup_now, command_env, files_under, free_port, make_settings, run_command, seed_shop
from sleepguard.store import BackupStore


def test_one_backup_then_unchanged(demo_backend, data_dir):
    seed_shop(demo_backend.url, users=2, customers=3)
    env = command_env(data_dir, demo_backend.url)
    first = run_command("manual_backup.py", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("backup good: 2 users, 6 customers, 6 orders in ")
    assert "→ backup-" in first.stdout and first.stderr == ""
    again = run_command("manual_backup.py", env=env)
    assert again.returncode == 0 and again.stdout.startswith("backup unchanged: 2 users, 6 customers")
    assert len(list((data_dir / "auto_backups_super").glob("backup-*.json"))) == 1


@pytest.fixture
def backed_up_shop(demo_backend, data_dir):
    """A shop with one good backup, read through a fault proxy that can then misbehave."""
    seed_shop(demo_backend.url, users=2, customers=6)
    with FaultProxy(demo_backend.url) as proxy:
        assert backup_now(make_settings(data_dir, proxy.url)).kind == "good"
        yield proxy


@pytest.mark.parametrize("fault, settings, reason", [
    ("unreachable", {}, "connection refused"),
    ("502", {}, "host answered 502"),
    ("not_json", {}, "answer is not JSON"),
    ("truncated", {}, "answer truncated"),
    ("hang", {"READ_TIMEOUT": "0.5", "RETRIES": "1"}, "timed out after 0.5 s"),
    ("oversized", {"MAX_RESPONSE_BYTES": "1024"}, "over MAX_RESPONSE_BYTES (1024)"),
])
def test_an_unusable_answer_changes_no_file(backed_up_shop, data_dir, fault, settings, reason):
    url = backed_up_shop.url
    if fault == "unreachable":
        url = f"http://127.0.0.1:{free_port()}"
    elif fault != "oversized":
        backed_up_shop.set_fault(fault)
    before = files_under(data_dir)
    result = run_command("manual_backup.py", env=command_env(data_dir, url, **settings), timeout=20)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("backup failed in ") and reason in result.stdout, result.stdout
    assert "no file was changed" in result.stdout
    assert files_under(data_dir) == before


def test_list_flags_damaged_files_and_the_newest_good_one_is_used(demo_backend, data_dir):
    shop = seed_shop(demo_backend.url, users=1, customers=2)
    env = command_env(data_dir, demo_backend.url)
    for extra in range(3):
        seed_shop(demo_backend.url, users=1, customers=1, prefix=f"later{extra}-")
        assert run_command("manual_backup.py", env=env).returncode == 0
    history = sorted((data_dir / "auto_backups_super").glob("backup-*.json"))
    newest, second = history[-1], history[-2]
    text = newest.read_bytes()
    newest.write_bytes(text.replace(b"Customer 0", b"Customer 9", 1))
    latest = data_dir / "data_backup.json"
    latest.write_bytes(latest.read_bytes()[: len(text) // 2])

    listing = run_command("manual_backup.py", "--list", env=env)
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[7]: line for line in listing.stdout.splitlines()[1:]}
    assert "BAD: not valid JSON" in rows["data_backup.json"]
    assert "BAD: checksum mismatch" in rows[newest.name]
    assert rows[second.name].endswith("  ok") and rows[second.name].split()[2:5] == ["good", "3", "4"]

    kept = BackupStore(make_settings(data_dir, demo_backend.url)).latest_good_backup()
    assert kept.meta["path"] == str(second)
    assert set(kept.customers_by_email()) == {"owner0@example.com", "later0-0@example.com", "later1-0@example.com"}
    assert set(shop) <= set(kept.customers_by_email())


def test_files_are_private_even_under_umask_000(demo_backend, data_dir):
    seed_shop(demo_backend.url, users=1, customers=1)
    target = data_dir / "fresh"
    old_umask = os.umask(0)
    try:
        assert run_command("manual_backup.py", env=command_env(target, demo_backend.url)).returncode == 0
        demo_backend.sleep_now()
        assert run_command("manual_backup.py", env=command_env(target, demo_backend.url)).returncode == 1
    finally:
        os.umask(old_umask)
    paths = [target, *target.rglob("*")]
    assert any(p.parent.name == "suspect" for p in paths)
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path


def test_a_write_cut_short_leaves_every_file_whole(demo_backend, data_dir):
    """A disk filling up mid-write (a file size limit) leaves the last good backup and the history as they were."""
    seed_shop(demo_backend.url, users=1, customers=2)
    env = command_env(data_dir, demo_backend.url, PYTHONDONTWRITEBYTECODE=1)
    assert run_command("manual_backup.py", env=env).returncode == 0
    seed_shop(demo_backend.url, users=3, customers=10, prefix="more")
    before = files_under(data_dir)
    limit = (data_dir / "data_backup.json").stat().st_size + 500
    result = subprocess.run([sys.executable, str(PROJECT_DIR / "manual_backup.py")], cwd=PROJECT_DIR, env=env,
                            capture_output=True, text=True, timeout=60,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert result.returncode == 1 and "File too large" in result.stdout and "Traceback" not in result.stderr, result.stdout + result.stderr
    assert files_under(data_dir) == before


def test_bad_settings_give_one_line_and_exit_2(data_dir):
    result = run_command("manual_backup.py", env=command_env(data_dir, "", KEEP_LAST="none"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("manual_backup.py: error: KEEP_LAST") and result.stderr.count("\n") == 1
    no_backend = run_command("manual_backup.py", env=command_env(data_dir, ""))
    assert no_backend.returncode == 2 and "BACKEND_URL is not set" in no_backend.stderr


def test_the_token_is_never_printed(demo_backend, data_dir):
    seed_shop(demo_backend.url, users=1, customers=2)
    good = run_command("manual_backup.py", env=command_env(data_dir, demo_backend.url, BACKEND_MODE="snapshot",
                                                            API_TOKEN=demo_backend.token, LOG_LEVEL="DEBUG"))
    assert good.returncode == 0 and good.stdout.startswith("backup good: 1 users, 2 customers"), good.stderr
    wrong_token = "wrong-token-7c1d9e"
    refused = run_command("manual_backup.py", env=command_env(data_dir, demo_backend.url, BACKEND_MODE="snapshot",
                                                               API_TOKEN=wrong_token))
    assert refused.returncode == 1 and "backup failed" in refused.stdout
    listing = run_command("manual_backup.py", "--list", env=command_env(data_dir, demo_backend.url))
    for result in (good, refused, listing):
        output = result.stdout + result.stderr
        assert demo_backend.token not in output and wrong_token not in output


# --- off-site: the key, the check, and the copy of a new good backup ---

def _offsite_env(data_dir, url, s3, recipient="", identity_file=""):
    from offsite_helpers import PREFIX
    return command_env(data_dir, url, OFFSITE_URL=f"s3://{s3.bucket}/{PREFIX}", OFFSITE_ENDPOINT_URL=s3.url,
                       OFFSITE_RECIPIENT=recipient, OFFSITE_IDENTITY_FILE=identity_file)


def test_offsite_keygen_writes_a_private_identity_and_says_it_is_the_only_way_to_read_the_copies(data_dir, tmp_path):
    identity = tmp_path / "keys" / "identity.txt"
    result = run_command("manual_backup.py", "--offsite-keygen", str(identity), env=command_env(data_dir))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(identity.stat().st_mode) == 0o600
    line = next(line for line in result.stdout.splitlines() if line.startswith("OFFSITE_RECIPIENT=age1"))
    assert f"# public key: {line.split('=', 1)[1]}" in identity.read_text()
    assert "nobody - not even sleepguard - can read" in result.stdout and "password manager" in result.stdout
    assert "AGE-SECRET-KEY" not in result.stdout + result.stderr
    again = run_command("manual_backup.py", "--offsite-keygen", str(identity), env=command_env(data_dir))
    assert again.returncode == 2 and "already exists" in again.stderr and again.stderr.count("\n") == 1


def test_a_good_manual_backup_goes_off_site_and_offsite_check_says_which_copies_are_good(demo_backend, data_dir,
                                                                                        moto_s3, tmp_path):
    from offsite_helpers import new_identity
    from service_helpers import wait_until
    identity, recipient = new_identity(tmp_path / "keys")
    seed_shop(demo_backend.url, users=2, customers=3)
    env = _offsite_env(data_dir, demo_backend.url, moto_s3, recipient, str(identity))
    first = run_command("manual_backup.py", env=env)
    assert first.returncode == 0 and "NOT queued" not in first.stdout, first.stdout + first.stderr
    check = lambda: run_command("manual_backup.py", "--offsite-check", env=env)  # noqa: E731
    done = wait_until(lambda: (result := check()).returncode == 0 and result, 30, "the copy uploaded")
    assert "good  backup-" in done.stdout and "2 users, 6 customers" in done.stdout and "(latest)" in done.stdout
    assert done.stdout.rstrip().endswith("off-site: 1 good copy of 1 checked")
    # An unchanged backup is not copied again.
    assert run_command("manual_backup.py", env=env).stdout.startswith("backup unchanged")
    assert not list((data_dir / "offsite_queue").glob("*.age"))
    assert check().stdout.rstrip().endswith("1 good copy of 1 checked")


def test_offsite_check_with_no_good_copy_exits_1_and_a_loose_identity_is_one_line(data_dir, moto_s3, tmp_path):
    from offsite_helpers import new_identity
    identity, recipient = new_identity(tmp_path / "keys")
    env = _offsite_env(data_dir, "", moto_s3, recipient, str(identity))
    empty = run_command("manual_backup.py", "--offsite-check", env=env)
    assert empty.returncode == 1 and "no copies in the store yet" in empty.stdout
    identity.chmod(0o644)
    loose = run_command("manual_backup.py", "--offsite-check", env=env)
    assert loose.returncode == 2 and "chmod 600" in loose.stderr and loose.stderr.count("\n") == 1


def test_on_a_new_machine_a_manual_backup_takes_over_first_so_a_wiped_back_end_is_never_the_first_backup(
        demo_backend, data_dir, moto_s3, tmp_path):
    from offsite_helpers import new_identity, offsite_settings
    from sleepguard.offsite_copies import drain_queue
    from sleepguard.offsite_queue import queue_copy
    identity, recipient = new_identity(tmp_path / "keys")
    seed_shop(demo_backend.url, users=2, customers=2)
    old = offsite_settings(data_dir, moto_s3, recipient, str(identity), BACKEND_URL=demo_backend.url)
    queue_copy(old, backup_now(old).path)
    assert drain_queue(old).waiting == 0
    demo_backend.sleep_now()
    fresh = tmp_path / "new-machine"
    fresh.mkdir(mode=0o700)
    result = run_command("manual_backup.py", env=_offsite_env(fresh, demo_backend.url, moto_s3, recipient,
                                                              str(identity)))
    assert result.returncode == 1 and result.stdout.startswith("backup HELD AS SUSPECT (wipe)"), result.stdout + result.stderr
    assert BackupStore(make_settings(fresh)).latest_good_backup().counts()["customers"] == 4


def test_accept_current_adopts_a_back_end_the_legacy_backup_never_saw(demo_backend, data_dir):
    seed_shop(demo_backend.url, users=2, customers=2)
    data_dir.mkdir(mode=0o700, exist_ok=True)
    legacy = data_dir / "data_backup.json"
    legacy.write_text('{"backup_created": "2025-08-21T02:23:11", "backup_type": "auto", '
                      '"users": [{"email": "long.gone@example.com"}], "customers": [{"name": "Deleted Long Ago"}]}')
    legacy.chmod(0o600)
    env = command_env(data_dir, demo_backend.url)
    listed = run_command("manual_backup.py", "--list", env=env)
    assert listed.stdout.splitlines()[1].endswith("data_backup.json  legacy (no checksum)"), listed.stdout
    held = run_command("manual_backup.py", env=env)
    assert held.returncode == 1 and "HELD AS SUSPECT (foreign)" in held.stdout, held.stdout
    accepted = run_command("manual_backup.py", "--accept-current", env=env)
    assert accepted.returncode == 0 and accepted.stdout.startswith("backup good: 2 users, 4 customers"), accepted.stdout
    assert BackupStore(make_settings(data_dir, demo_backend.url)).latest_good_backup().counts()["users"] == 2
    assert "legacy" not in run_command("manual_backup.py", "--list", env=env).stdout.splitlines()[1]


def test_an_answer_nested_5000_deep_is_one_line_and_no_file(data_dir):
    from test_client import CannedServer
    deep = b"[" * 5000 + b"]" * 5000
    status = b'{"status": "healthy", "backup_triggers_count": 0, "recent_triggers": [], "last_backup": null}'
    server = CannedServer({"/api/users": (200, "application/json", deep),
                           "/api/backup/status": (200, "application/json", status)})
    try:
        result = run_command("manual_backup.py", env=command_env(data_dir, server.url))
    finally:
        server.stop()
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.stdout.startswith("backup failed") and "nested too deeply" in result.stdout
    assert result.stdout.count("\n") == 1 and not (data_dir / "data_backup.json").exists()
