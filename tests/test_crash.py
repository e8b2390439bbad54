"""kill -9 at random instants, mid-write included: every file stays whole and no backup reported good is ever lost.

The backup service and one-shot manual backups run as real processes against a demo back end
whose data keeps growing, and are killed over and over at random moments (a seeded
random.Random; set SLEEPGUARD_CRASH_SEED to replay one run's delays). After every kill:
every backup and state file verifies, hidden temp files are the only leftovers, and
data_backup.json is at least as new, and holds at least as many customers, as every backup a
process reported good before it died (the service's log line, manual_backup.py's output).
"""

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

import requests

from helpers import PROJECT_DIR, command_env, make_settings, run_command, seed_shop
from sleepguard.atomicfile import TEMP_NAME
from sleepguard.services import AUTO_BACKUP
from sleepguard.snapshot import parse_backup, parse_utc_time
from sleepguard.store import STAMP_FORMAT, BackupStore
from test_store import make_snapshot

SERVICE = AUTO_BACKUP.name
KILLS_WANTED = 50
# Good backups reported, for the checks to prove anything; a loaded machine needs more kills to get there.
GOODS_WANTED = 10
LANES_DEADLINE = 90
# Seconds after the start at which a process is killed: the ranges cover start-up, the back end
# read, the writes and (for the service) many iterations.
SERVICE_DELAYS = (0.0, 0.4)
MANUAL_DELAYS = (0.3, 1.0)
# When a kill comes: a random delay; a random few ms after the process took the store's lock (while it
# judges and writes); or the instant a backup's temp file appears (mid-write for sure).
MOMENTS = ("any time", "in the store", "mid-write")
ADD_EVERY = 0.05
BACKUP_TEMP = re.compile(r"^\.(data_backup\.json|backup-.*|suspect-.*)\.[a-z0-9_]{8}\.tmp$")
GOOD_LINE = re.compile(r"backup good: \d+ users, (\d+) customers, .*? → backup-(\d{8}T\d{6}\.\d{6}Z)-[0-9a-f]{8}")


@dataclass(frozen=True)
class Reported:
    """A backup some process said was good: its read time and customer count, from its summary line."""

    created_at: datetime
    customers: int
    source: str


def reported_goods(text, source):
    """Every "backup good" summary line in text, as Reported."""
    return [Reported(datetime.strptime(stamp, STAMP_FORMAT).replace(tzinfo=timezone.utc), int(customers), source)
            for customers, stamp in GOOD_LINE.findall(text)]


class Adder(threading.Thread):
    """Adds a customer through the public API every ADD_EVERY seconds, so every backup has news."""

    def __init__(self, url, shop):
        super().__init__(daemon=True)
        self.url, self.owner_ids = url, [owner["id"] for owner in shop.values()]
        self.stopping = threading.Event()
        self.added = 0

    def run(self):
        with requests.Session() as session:
            while not self.stopping.wait(ADD_EVERY):
                user_id = self.owner_ids[self.added % len(self.owner_ids)]
                session.post(f"{self.url}/api/customers", params={"user_id": user_id},
                             json={"name": f"Added {self.added}"}, timeout=10).raise_for_status()
                self.added += 1


class CrashRun:
    """Kill lanes sharing one DATA_DIR, the reports of good backups, and the check run after every kill."""

    def __init__(self, data_dir, url, seed):
        self.data_dir, self.seed = data_dir, seed
        self.history_dir = data_dir / "auto_backups_super"
        self.env = command_env(data_dir, url, BACKUP_INTERVAL="0.02", TRIGGER_POLL_INTERVAL="0.02", KEEP_LAST="5",
                               LOG_MAX_BYTES=str(50 * 1024 * 1024))
        self.stopping = threading.Event()
        self.deadline = time.monotonic() + LANES_DEADLINE
        self.check_lock = threading.Lock()
        self.count_lock = threading.Lock()
        self.manual_reports = []
        self.kills = Counter()
        self.finished_manual = 0
        self.temps_seen = set()
        self.verified = set()  # history files never change once named: each is verified once

    def fail(self, message):
        raise AssertionError(f"{message} (seed {self.seed}: rerun with SLEEPGUARD_CRASH_SEED={self.seed})")

    def lane(self, name, script, delays):
        """Start script, kill it at a random moment, check, again, until enough kills were made."""
        rng = random.Random(f"{self.seed}-{name}")
        while not self.stopping.is_set():
            process = subprocess.Popen([sys.executable, str(PROJECT_DIR / script)], cwd=PROJECT_DIR, env=self.env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                if script == f"{SERVICE}.py":
                    # Start-up takes most of a second on a busy machine: the service's delays count from its
                    # start, and it runs a few iterations before any kill.
                    self.wait_for_service_start(process)
                    time.sleep(rng.uniform(*delays))
                moment = rng.choice(MOMENTS)
                if script != f"{SERVICE}.py" and self.kills_made() >= KILLS_WANTED:
                    # Every kill wanted is made: manual backups now run to their end, so a loaded machine, whose
                    # start-up alone can outlast the kill delays, still gets the good backups the checks need.
                    moment = "to its end"
                    process.wait(LANES_DEADLINE)
                elif moment == "any time":
                    time.sleep(rng.uniform(*delays))
                else:
                    found = self.store_locked if moment == "in the store" else self.backup_temp_exists
                    self.wait_for(found, process)
                    if moment == "in the store":
                        time.sleep(rng.uniform(0, 0.03))
                killed = process.poll() is None
                if killed:
                    process.kill()
            finally:
                out, err = process.communicate()
            if not killed and process.returncode != 0:
                self.fail(f"{script} ended by itself with exit {process.returncode}: {out}{err}")
            with self.count_lock:
                # A manual backup killed after its summary line was printed reported it all the same.
                self.manual_reports += reported_goods(out, f"{script} output")
                if killed:
                    self.kills[f"{name.split('-')[0]} {moment}"] += 1
                else:
                    self.finished_manual += 1
            self.check()
            enough = self.kills_made() >= KILLS_WANTED and len(self.reports()) >= GOODS_WANTED
            if enough or time.monotonic() > self.deadline:
                self.stopping.set()

    def kills_made(self):
        with self.count_lock:
            return sum(self.kills.values())

    def wait_for_service_start(self, process):
        """Wait for the service's "started (PID n)" log line: its PID file is taken, its loop begins."""
        deadline, started = time.monotonic() + 15, f"started (PID {process.pid})"
        while started not in self.log_text():
            if process.poll() is not None or time.monotonic() > deadline:
                self.fail(f"the backup service did not start: {process.communicate()}")
            time.sleep(0.01)

    def log_text(self):
        log_path = self.data_dir / f"{SERVICE}.log"
        return log_path.read_text() if log_path.exists() else ""

    @staticmethod
    def wait_for(found, process, seconds=3):
        """Poll found(pid) until true, the process ends or the seconds pass."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and process.poll() is None and not found(process.pid):
            time.sleep(0.002)

    @staticmethod
    def store_locked(pid):
        """True while the process has the store's lock file open: it is judging and writing."""
        try:
            return any(os.readlink(f"/proc/{pid}/fd/{fd}").endswith("/.store.lock")
                       for fd in os.listdir(f"/proc/{pid}/fd"))
        except OSError:  # the process or one of its descriptors went away meanwhile
            return False

    def backup_temp_exists(self, pid):
        """True while a backup's temp file exists: some write is half-way."""
        for folder in (self.data_dir, self.history_dir):
            try:
                if any(BACKUP_TEMP.match(name) for name in os.listdir(folder)):
                    return True
            except FileNotFoundError:
                pass
        return False

    def reports(self):
        return reported_goods(self.log_text(), "service log") + list(self.manual_reports)

    def check(self):
        """Every file whole; data_backup.json no older and no smaller than any backup reported good so far."""
        with self.check_lock:
            # The reports first: data_backup.json read afterwards may only be as new or newer.
            reports = self.reports()
            self.verify_every_file()
            if not reports:
                return
            latest = parse_backup((self.data_dir / "data_backup.json").read_bytes())
            created = parse_utc_time(latest.meta["created_at"])
            newest = max(reports, key=lambda report: report.created_at)
            if created < newest.created_at:
                self.fail(f"data_backup.json was read at {created}, before the backup of {newest.created_at} "
                          f"that the {newest.source} reported good")
            most = max(reports, key=lambda report: report.customers)
            if latest.counts()["customers"] < most.customers:
                self.fail(f"data_backup.json holds {latest.counts()['customers']} customers, fewer than the "
                          f"{most.customers} of a backup the {most.source} reported good")

    def verify_every_file(self):
        """Backups and state files parse and verify; a hidden temp file is the only leftover a kill may leave."""
        for path in self.data_dir.rglob("*"):
            name = path.name
            if TEMP_NAME.match(name):
                self.temps_seen.add(path)
                continue
            if name.startswith("damaged-"):
                self.fail(f"the store found data_backup.json damaged and set it aside as {name}")
            if not name.endswith(".json") or path in self.verified:
                continue
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # retention removed it meanwhile
                continue
            try:
                if name.endswith(".state.json"):
                    json.loads(data)
                else:
                    parse_backup(data)
                    if path.parent != self.data_dir:
                        self.verified.add(path)
            except ValueError as exc:  # BackupFileError and JSONDecodeError are both ValueErrors
                self.fail(f"{path.relative_to(self.data_dir)} does not verify after a kill: {exc}")


def test_kill_minus_nine_at_random_instants_loses_nothing_reported_good(demo_backend, data_dir):
    seed = int(os.environ.get("SLEEPGUARD_CRASH_SEED") or random.SystemRandom().randrange(2 ** 32))
    print(f"crash test seed {seed}")
    shop = seed_shop(demo_backend.url, users=2, customers=3)
    run = CrashRun(data_dir, demo_backend.url, seed)
    adder = Adder(demo_backend.url, shop)
    adder.start()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(3) as pool:
            lanes = [pool.submit(run.lane, "service", f"{SERVICE}.py", SERVICE_DELAYS),
                     pool.submit(run.lane, "manual-1", "manual_backup.py", MANUAL_DELAYS),
                     pool.submit(run.lane, "manual-2", "manual_backup.py", MANUAL_DELAYS)]
            try:
                for lane in lanes:
                    lane.result()
            finally:
                run.stopping.set()
    finally:
        adder.stopping.set()
        adder.join(5)
    run.check()
    reports = run.reports()
    leftovers = sorted(path for path in data_dir.rglob("*") if TEMP_NAME.match(path.name))
    print(f"{sum(run.kills.values())} kills {dict(run.kills)}, {run.finished_manual} manual backups "
          f"finished, {len(reports)} good backups reported, {adder.added} customers added, "
          f"{len(run.temps_seen)} temp files seen, {len(leftovers)} left, in {time.monotonic() - started:.1f} s")
    assert sum(run.kills.values()) >= KILLS_WANTED
    assert {lane_and_moment.split()[0] for lane_and_moment in run.kills} == {"service", "manual"}
    assert len(reports) >= GOODS_WANTED, f"too few good backups to prove anything (seed {seed})"

    # Readers never pick up a temp file: the listing and the latest good backup are our named files only.
    store = BackupStore(make_settings(data_dir, demo_backend.url))
    listed = store.list_backups()
    assert all(entry.ok and not entry.path.name.startswith(".") for entry in listed), listed
    assert store.latest_good_backup().meta["path"] == str(store.latest_path)

    # Temp files of writes that died do not pile up: the next write clears those over a minute old.
    stale = leftovers + [data_dir / ".data_backup.json.stale000.tmp", run.history_dir / ".backup-x.json.stale000.tmp"]
    fresh = data_dir / ".data_backup.json.fresh000.tmp"
    for path in stale + [fresh]:
        path.touch()
    minute_ago = time.time() - 90
    for path in stale:
        os.utime(path, (minute_ago, minute_ago))
    assert run_command("manual_backup.py", env=run.env).returncode == 0
    assert not [path for path in stale if path.exists()]
    assert fresh.exists()


def read_of(customers, ended, took):
    """A read of the back end as the client makes it: created_at is when it ended, duration_seconds how long it took."""
    snapshot = make_snapshot(customers=customers, created_at=f"2026-11-29T01:00:{ended}Z")
    snapshot.meta["duration_seconds"] = took
    return snapshot


def test_a_read_overtaken_by_a_later_backup_never_displaces_it(data_dir):
    """Two backups at once (service and manual_backup.py): a read that began first lacks what was added meanwhile."""
    store = BackupStore(make_settings(data_dir))
    assert store.record(read_of(customers=5, ended="00.000000", took=0.05)).kind == "good"
    later = read_of(customers=6, ended="01.000000", took=0.05)
    assert store.record(later).kind == "good"
    # Began at 0.6 s, before the later read ended at 1.0 s; finished last, without the customers added at 0.8 s.
    overtaken = store.record(read_of(customers=5, ended="01.100000", took=0.5))
    assert overtaken.kind == "unchanged" and "began before" in overtaken.reason
    assert store.latest_good_backup().checksum() == later.checksum()
    # A read begun after the latest one ended sees a real deletion, and it is kept.
    deleted = store.record(read_of(customers=5, ended="02.000000", took=0.05))
    assert deleted.kind == "good" and deleted.judgement.verdict == "deleted"
    assert store.latest_good_backup().counts()["customers"] == 10
