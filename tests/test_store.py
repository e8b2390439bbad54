"""The backup store on its own: what becomes the good backup, what is held aside, retention, damage, permissions."""

import fcntl
import json
import os
import stat
import threading
from datetime import datetime, timedelta, timezone

import pytest

from helpers import make_settings
from sleepguard.snapshot import Snapshot
import sleepguard.store as store_module
from sleepguard.store import BackupStore

NAME_TIME = "%Y%m%dT%H%M%S.%fZ"


def make_snapshot(owners=2, customers=5, ids="first", created_at="2026-11-29T01:00:00.000000Z", drop=()):
    """A read of owners x customers; `ids` names the back end's life (a wipe gives new ids); drop removes customers."""
    users = []
    for i in range(owners):
        email = f"owner{i}@example.com"
        users.append({"id": f"{ids}-user-{i}", "email": email, "created_at": "2026-11-01T10:00:00",
                      "customers": [{"id": f"{ids}-customer-{i}-{j}", "name": f"Customer {j}", "money_given": 10.5,
                                     "orders": [{"id": f"order-{j}", "items": [{"desc": "Item", "qty": "1"}]}]}
                                    for j in range(customers) if (email, j) not in drop]})
    return Snapshot(users=users, meta={"created_at": created_at, "mode": "babs10"})


def files_under(folder):
    """Every file below folder: relative name → (bytes, mtime_ns)."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def history_names(store):
    return sorted(p.name for p in store.history_dir.glob("backup-*.json"))


def damage(path):
    """Change one character inside the content: still JSON, but the checksum no longer matches."""
    text = path.read_text()
    path.write_text(text.replace("Customer 1", "Customer X", 1))


@pytest.fixture
def store(data_dir):
    return BackupStore(make_settings(data_dir))


def test_first_read_becomes_data_backup_and_history(store):
    outcome = store.record(make_snapshot())
    assert outcome.kind == "good" and outcome.judgement.verdict == "first"
    assert outcome.path.parent == store.history_dir
    assert outcome.path.name.startswith("backup-20261129T010000.000000Z-")
    assert store.latest_path.read_bytes() == outcome.path.read_bytes()
    assert store.latest_good_backup().checksum() == make_snapshot().checksum()
    assert store.latest_good_backup().meta["path"] == str(store.latest_path)


def test_unchanged_read_writes_no_byte_but_marks_the_verified_time(store):
    store.record(make_snapshot())
    os.utime(store.latest_path, (1_000_000, 1_000_000))
    before = store.latest_path.read_bytes()
    outcome = store.record(make_snapshot(created_at="2026-11-29T01:02:00.000000Z"))
    assert outcome.kind == "unchanged"
    assert len(history_names(store)) == 1
    assert store.latest_path.read_bytes() == before
    assert store.latest_path.stat().st_mtime > 1_000_000 + 3600


def test_a_wiped_read_never_displaces_the_good_backup(store):
    store.record(make_snapshot())
    store.record(make_snapshot(drop={("owner0@example.com", 0)}, created_at="2026-11-29T01:02:00.000000Z"))
    good_before = files_under(store.history_dir)
    latest_before = store.latest_path.read_bytes()
    for minute in range(10, 30):
        # The owner signed up again after the wipe and added a customer: new ids, nothing old survived.
        wiped = make_snapshot(owners=1, customers=1, ids="after-wipe", created_at=f"2026-11-29T01:{minute}:00.000000Z")
        outcome = store.record(wiped, accept_shrink=True)
        assert outcome.kind == "suspect" and outcome.judgement.verdict == "wipe"
    assert store.latest_path.read_bytes() == latest_before
    assert {k: v for k, v in files_under(store.history_dir).items() if not k.startswith("suspect/")} == good_before
    held = list(store.suspect_dir.iterdir())
    assert len(held) == 1, "the same wiped read is held once, not once per backup"
    assert json.loads(held[0].read_text())["verdict"] == "wipe"
    assert [entry.path for entry in store.held_suspects()] == held


def test_deletion_is_good_a_large_drop_is_held_until_accepted(store):
    store.record(make_snapshot(owners=1, customers=10))
    deleted_one = make_snapshot(owners=1, customers=10, drop={("owner0@example.com", 3)},
                                created_at="2026-11-29T01:02:00.000000Z")
    assert store.record(deleted_one).kind == "good"
    six_gone = {("owner0@example.com", j) for j in range(3, 9)}
    large_drop = make_snapshot(owners=1, customers=10, drop=six_gone, created_at="2026-11-29T01:04:00.000000Z")
    held = store.record(large_drop)
    assert held.kind == "suspect" and held.judgement.verdict == "large_drop"
    assert store.latest_good_backup().checksum() == deleted_one.checksum()
    accepted = store.record(large_drop, accept_shrink=True)
    assert accepted.kind == "good"
    assert store.latest_good_backup().checksum() == large_drop.checksum()
    assert store.held_suspects() == []


def test_suspects_are_capped_and_never_push_good_history_out(data_dir):
    store = BackupStore(make_settings(data_dir, keep_last=3))
    for minute in range(3):
        store.record(make_snapshot(customers=5 + minute, created_at=f"2026-11-29T01:0{minute}:00.000000Z"))
    good_before = files_under(store.history_dir)
    for minute in range(10, 18):
        store.record(make_snapshot(owners=1, customers=minute, ids=f"wipe{minute}",
                                   created_at=f"2026-11-29T01:{minute}:00.000000Z"))
    suspects = sorted(p.name for p in store.suspect_dir.iterdir())
    assert len(suspects) == 3 and suspects[-1].startswith("suspect-20261129T011700")
    assert {k: v for k, v in files_under(store.history_dir).items() if not k.startswith("suspect/")} == good_before


def write_history_file(store, created, customers, damaged=False):
    """A history file as the store names it, created at the given time."""
    snapshot = make_snapshot(customers=customers, created_at=created.isoformat().replace("+00:00", "Z"))
    path = store.history_dir / f"backup-{created.strftime(NAME_TIME)}-{snapshot.checksum()[:8]}.json"
    path.write_text(json.dumps(snapshot.to_document()))
    if damaged:
        damage(path)
    return path


def test_retention_keeps_the_last_ones_one_per_hour_and_one_per_day(data_dir):
    store = BackupStore(make_settings(data_dir, keep_last=3, keep_hourly=4, keep_daily=3))
    store.history_dir.mkdir(parents=True)
    now = datetime(2026, 11, 29, 12, 30, tzinfo=timezone.utc)
    plan = [  # (created, kept?, damaged?)
        ("29 12:20", True, False), ("29 12:10", True, False), ("29 12:00", True, False),  # the newest three
        ("29 11:50", True, False), ("29 11:40", False, False),                            # one per hour...
        ("29 10:30", True, False),
        ("29 09:45", True, False), ("29 09:15", True, True), ("29 09:05", False, False),  # ...damaged ones stay
        ("29 08:00", False, False),                                                      # outside 4 hours
        ("28 23:00", True, False), ("28 05:00", False, False),                            # one per day...
        ("27 10:00", True, False),
        ("26 10:00", False, False), ("26 09:00", True, True),                             # outside 3 days
    ]
    paths = {}
    for count, (when, kept, damaged) in enumerate(plan):
        created = datetime.strptime(f"2026-11-{when}", "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
        paths[when] = write_history_file(store, created, customers=3 + count, damaged=damaged)
    legacy = store.history_dir / "auto_backup_20250821_022311.json"
    legacy.write_text('{"users": [], "customers": []}')
    store.suspect_dir.mkdir()
    for minute in range(5):
        (store.suspect_dir / f"suspect-20261129T1225{minute:02d}.000000Z-0000000{minute}.json").write_text("{}")

    removed = store.prune_history(now=now)

    assert sorted(removed) == sorted(paths[when] for when, kept, _ in plan if not kept)
    for when, kept, _damaged in plan:
        assert paths[when].exists() == kept, when
    assert legacy.exists() and len(list(store.suspect_dir.iterdir())) == 5


def test_retention_never_removes_the_newest_good_backup(data_dir):
    store = BackupStore(make_settings(data_dir, keep_last=1, keep_hourly=0, keep_daily=0))
    store.history_dir.mkdir(parents=True)
    base = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
    damaged_newest = write_history_file(store, base + timedelta(minutes=20), customers=7, damaged=True)
    newest_good = write_history_file(store, base + timedelta(minutes=10), customers=6)
    older = write_history_file(store, base, customers=5)
    assert store.prune_history(now=base + timedelta(minutes=30)) == [older]
    assert damaged_newest.exists() and newest_good.exists()


def test_damaged_files_are_flagged_skipped_and_never_overwritten(store):
    first = store.record(make_snapshot(customers=3)).path
    second = store.record(make_snapshot(customers=4, created_at="2026-11-29T01:02:00.000000Z")).path
    third = store.record(make_snapshot(customers=5, created_at="2026-11-29T01:04:00.000000Z")).path
    damage(third)
    store.latest_path.write_bytes(store.latest_path.read_bytes()[:200])

    assert store.latest_good_backup().checksum() == make_snapshot(customers=4).checksum()
    entries = {entry.path.name: entry for entry in store.list_backups()}
    assert entries["data_backup.json"].kind == "latest" and "not valid JSON" in entries["data_backup.json"].error
    assert "checksum mismatch" in entries[third.name].error
    assert entries[second.name].ok and entries[first.name].ok
    assert entries[second.name].counts == {"users": 2, "customers": 8, "orders": 8}

    # The back end still holds what the second backup has: data_backup.json is rebuilt from it, the damaged one kept.
    damaged_latest = store.latest_path.read_bytes()
    outcome = store.record(make_snapshot(customers=4, created_at="2026-11-29T01:06:00.000000Z"))
    assert outcome.kind == "unchanged"
    assert store.latest_path.read_bytes() == second.read_bytes()
    kept_aside = list(store.history_dir.glob("damaged-*.json"))
    assert [p.read_bytes() for p in kept_aside] == [damaged_latest]
    assert third.exists()


def test_a_backup_known_to_this_process_is_looked_at_again_when_one_byte_changes(store):
    first = store.record(make_snapshot(customers=3)).path
    store.record(make_snapshot(customers=4, created_at="2026-11-29T01:02:00.000000Z"))
    # Looked at every round (the status, the restore check): known by its bytes from now on.
    assert store.latest_good_summary().counts["customers"] == 8
    assert store.record(make_snapshot(customers=4, created_at="2026-11-29T01:04:00.000000Z")).kind == "unchanged"
    # Damaged in place, the same size and time: the next look must not trust what it knew.
    touched = store.latest_path.stat()
    damage(store.latest_path)
    os.utime(store.latest_path, ns=(touched.st_atime_ns, touched.st_mtime_ns))
    assert store.latest_path.stat().st_size == touched.st_size
    summary = store.latest_good_summary()
    assert summary.path.name.startswith("backup-") and summary.counts["customers"] == 8
    # The same read again: judged against the history file, data_backup.json rebuilt, the damaged one kept aside.
    assert store.record(make_snapshot(customers=4, created_at="2026-11-29T01:06:00.000000Z")).kind == "unchanged"
    assert store.latest_good_summary().path == store.latest_path
    assert len(list(store.history_dir.glob("damaged-*.json"))) == 1
    # A changed read after all that is a new good backup, not "unchanged" from memory.
    assert store.record(make_snapshot(customers=3, created_at="2026-11-29T01:08:00.000000Z")).kind == "good"
    assert store.latest_good_summary().counts["customers"] == 6 and first.exists()


def test_files_are_private_even_under_umask_000(data_dir):
    store = BackupStore(make_settings(data_dir / "new" / "folder"))
    old_umask = os.umask(0)
    try:
        store.record(make_snapshot())
        store.record(make_snapshot(owners=1, ids="wiped"))
    finally:
        os.umask(old_umask)
    for path in [data_dir / "new" / "folder", *(data_dir / "new" / "folder").rglob("*")]:
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_names_never_collide(store):
    a, b = make_snapshot(customers=3), make_snapshot(customers=4, created_at="2026-11-29T01:02:00.000000Z")
    first, _ = store.record(a).path, store.record(b)
    again = store.record(make_snapshot(customers=3)).path
    assert again != first and again.name == first.name.replace(".json", "-2.json")
    assert first.read_bytes() == again.read_bytes()


def test_concurrent_writers_are_serialised(data_dir):
    settings = make_settings(data_dir)
    BackupStore(settings).record(make_snapshot(customers=3))
    changed = make_snapshot(customers=4, created_at="2026-11-29T01:02:00.000000Z")
    start, outcomes = threading.Barrier(8), []

    def write():
        start.wait()
        outcomes.append(BackupStore(settings).record(changed).kind)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["good"] + ["unchanged"] * 7
    assert len(history_names(BackupStore(settings))) == 2


def test_a_reader_waits_for_a_backup_being_written_but_never_hangs_on_a_stopped_writer(store, monkeypatch):
    store.record(make_snapshot())
    writer = os.open(store.lock_path, os.O_RDWR)
    fcntl.flock(writer, fcntl.LOCK_EX)  # a writer stopped mid-write holds the lock
    monkeypatch.setattr(store_module, "WRITE_WAIT_SECONDS", 0.2)
    done = threading.Event()
    threading.Thread(target=lambda: (store.latest_good_backup(), done.set()), daemon=True).start()
    assert not done.wait(0.05), "the reader must wait while a backup is being written"
    assert done.wait(10), "the reader must not hang on a writer that never finishes"
    os.close(writer)


def test_a_foreign_back_end_is_held_until_the_owner_accepts_it(data_dir):
    store = BackupStore(make_settings(data_dir, backend_url="http://127.0.0.1:8000"))
    good = make_snapshot()
    good.meta["backend_url"] = "http://127.0.0.1:8000"
    assert store.record(good).kind == "good"
    before = (history_names(store), store.latest_path.read_bytes())
    other = make_snapshot(owners=1, ids="other")
    other.users[0]["email"] = "someone@example.com"
    other.users[0]["created_at"] = "2026-10-01T10:00:00"
    held = store.record(other)
    assert held.kind == "suspect" and held.judgement.verdict == "foreign"
    assert (history_names(store), store.latest_path.read_bytes()) == before
    assert store.record(other, accept_shrink=True).kind == "suspect"
    assert store.record(other, accept_current=True).kind == "good"
    assert store.latest_good_backup().checksum() == other.checksum()


def test_a_wipe_is_never_accepted_as_current(store):
    store.record(make_snapshot())
    outcome = store.record(Snapshot(users=[], meta={"created_at": "2026-11-29T02:00:00.000000Z"}), accept_current=True)
    assert outcome.kind == "suspect" and "never promotes a wipe" in outcome.reason


def test_backup_files_never_hold_the_credentials_of_the_url(data_dir):
    store = BackupStore(make_settings(data_dir))
    snapshot = make_snapshot()
    snapshot.meta["backend_url"] = "http://shop:S3cretPW@127.0.0.1:8000"
    store.record(snapshot)
    files = list(data_dir.rglob("*.json"))
    assert files and not any(b"S3cretPW" in path.read_bytes() for path in files)
    assert store.latest_good_backup().meta["backend_url"] == "http://127.0.0.1:8000"


def test_old_files_holding_credentials_are_rewritten_once_still_verifying(data_dir, monkeypatch):
    store = BackupStore(make_settings(data_dir))
    store.record(make_snapshot())
    for path in [store.latest_path, *store.history_dir.glob("backup-*.json")]:
        document = json.loads(path.read_bytes())
        path.write_bytes(json.dumps({**document, "backend_url": "http://shop:S3cretPW@127.0.0.1:8000"}).encode())
    verified_at = store.latest_path.stat().st_mtime_ns
    monkeypatch.setattr(store_module, "_SCRUBBED", set())
    store.record(make_snapshot())
    assert not any(b"S3cretPW" in path.read_bytes() for path in data_dir.rglob("*.json"))
    assert all(entry.ok for entry in store.list_backups())
    assert store.latest_path.stat().st_mtime_ns >= verified_at
