"""take_backup against a real demo back end: the incident of DESIGN.md replayed, deletions, shrinks and failures."""

import os
import socket

import requests

from helpers import backup_now, command_env, make_settings, run_command, seed_shop
from sleepguard.store import BackupStore
from sleepguard.wording import describe, format_backup_list


def files_under(folder):
    """Every file and folder below folder: relative name → (bytes, mtime_ns); folders map to None."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


def good_history(store):
    return {name: state for name, state in files_under(store.history_dir).items() if not name.startswith("suspect")}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def names_by_owner(snapshot):
    return {email: sorted(c["name"] for c in customers) for email, customers in snapshot.customers_by_email().items()}


def test_the_incident_replayed_loses_nothing(demo_backend, data_dir):
    """Wipe, the owner signs up again and adds a customer, then backups run on and on: the good backup survives."""
    shop = seed_shop(demo_backend.url, users=5, customers=6)
    settings = make_settings(data_dir, demo_backend.url, keep_last=3)
    assert backup_now(settings).kind == "good"
    store = BackupStore(settings)
    history_before, latest_before = good_history(store), store.latest_path.read_bytes()

    demo_backend.sleep_now()
    owner = "owner0@example.com"
    signup = requests.post(f"{demo_backend.url}/api/users", json={"email": owner, "pin": "8642"}, timeout=10)
    signup.raise_for_status()
    requests.post(f"{demo_backend.url}/api/customers", params={"user_id": signup.json()["id"]},
                  json={"name": "Customer 0 of owner0", "money_given": 1, "orders": []}, timeout=10).raise_for_status()

    for _ in range(50):
        outcome = backup_now(settings)
        assert outcome.kind == "suspect" and outcome.judgement.verdict == "wipe", describe(outcome)
    for _ in range(3):
        result = run_command("manual_backup.py", env=command_env(data_dir, demo_backend.url, KEEP_LAST=3))
        assert result.returncode == 1, result.stdout + result.stderr
        assert "HELD AS SUSPECT (wipe)" in result.stdout and "data_backup.json untouched" in result.stdout

    assert store.latest_path.read_bytes() == latest_before
    assert good_history(store) == history_before
    kept = store.latest_good_backup()
    assert names_by_owner(kept) == {email: sorted(owner["customers"]) for email, owner in shop.items()}
    assert {c["id"] for customers in kept.customers_by_email().values() for c in customers} == \
        {c["id"] for owner in shop.values() for c in owner["customers"].values()}
    held = list(store.suspect_dir.iterdir())
    assert len(held) == 1
    assert [entry.counts for entry in store.held_suspects()] == [{"users": 1, "customers": 1, "orders": 0}]


def test_a_deletion_is_kept_a_large_drop_is_held_until_accepted(demo_backend, data_dir):
    shop = seed_shop(demo_backend.url, users=1, customers=10)
    (owner,) = shop.values()
    settings = make_settings(data_dir, demo_backend.url)
    assert backup_now(settings).kind == "good"

    def delete(name):
        requests.delete(f"{demo_backend.url}/api/customers/{owner['customers'][name]['id']}",
                        params={"user_id": owner["id"]}, timeout=10).raise_for_status()

    names = sorted(owner["customers"])
    delete(names[0])
    deleted = backup_now(settings)
    assert deleted.kind == "good" and deleted.judgement.verdict == "deleted"
    assert deleted.counts["customers"] == 9
    store = BackupStore(settings)
    latest_before = store.latest_path.read_bytes()

    for name in names[1:7]:
        delete(name)
    held = backup_now(settings)
    assert held.kind == "suspect" and held.judgement.verdict == "large_drop"
    assert store.latest_path.read_bytes() == latest_before

    env = command_env(data_dir, demo_backend.url)
    accepted = run_command("manual_backup.py", "--accept-shrink", env=env)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert accepted.stdout.startswith("backup good: 1 users, 3 customers")
    assert store.latest_good_backup().counts()["customers"] == 3

    demo_backend.sleep_now()
    refused = run_command("manual_backup.py", "--accept-shrink", env=env)
    assert refused.returncode == 1 and "never promotes a wipe" in refused.stdout
    assert store.latest_good_backup().counts()["customers"] == 3


def test_a_failed_read_touches_nothing_not_even_the_folder(data_dir):
    settings = make_settings(data_dir / "not-yet", f"http://127.0.0.1:{free_port()}", retries=0)
    outcome = backup_now(settings)
    assert outcome.kind == "failed" and "connection refused" in outcome.reason
    assert not (data_dir / "not-yet").exists()
    assert describe(outcome).startswith("backup failed in ")


def test_unchanged_content_writes_no_new_file(demo_backend, data_dir):
    seed_shop(demo_backend.url, users=2, customers=3)
    settings = make_settings(data_dir, demo_backend.url)
    first = backup_now(settings)
    store = BackupStore(settings)
    before = good_history(store)
    latest = store.latest_path.read_bytes()
    os.utime(store.latest_path, (1_000_000, 1_000_000))
    again = backup_now(settings)
    assert again.kind == "unchanged" and again.path == store.latest_path
    assert good_history(store) == before and [first.path.name] == list(before)
    assert store.latest_path.read_bytes() == latest and store.latest_path.stat().st_mtime > 1_000_000 + 3600
    assert "backup unchanged: 2 users, 6 customers, 6 orders in " in describe(again)
    table = format_backup_list(store.list_backups())
    assert table.splitlines()[1].split()[2:5] == ["latest", "2", "6"]


def test_the_summary_is_said_once_by_whoever_took_the_backup(demo_backend, data_dir, caplog):
    """The library returns the outcome and logs none of it; the command prints it once, the service logs it once."""
    seed_shop(demo_backend.url, users=2, customers=3)
    with caplog.at_level("DEBUG", logger="sleepguard.backup"):
        assert backup_now(make_settings(data_dir, demo_backend.url)).kind == "good"
    assert not [record for record in caplog.records if record.name == "sleepguard.backup"]
    demo_backend.sleep_now()
    seed_shop(demo_backend.url, users=1, customers=1, prefix="again")
    result = run_command("manual_backup.py", env=command_env(data_dir, demo_backend.url))
    assert result.returncode == 1
    assert (result.stdout + result.stderr).count("HELD AS SUSPECT") == 1, result.stdout + result.stderr
