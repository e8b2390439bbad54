#!/usr/bin/env python3
"""Measure sleepguard against the naive sequential scripts it replaces, side by side, on the demo back end behind a slow network.

usage: python3 benchmarks/run.py [--quick] [--rtt MS] [--users N] [--customers N] [--iterations N]
                                [--no-handshake] [--output PATH] [--keep]

It starts the demo back end behind a latency proxy, seeds a shop, times backup (in-process and
as whole processes), the API-mode restore at the real PIN cost and the snapshot restore and
recovery both ways, runs the three services for memory and disk figures, measures the cost curve
at 10, 200 and 2000 users, prints the table and writes it to benchmarks/RESULTS.md with the chart
benchmarks/cost_curve.svg. Everything lives in a temp folder, removed at the end;
every process it started is stopped, Ctrl-C included.
"""

import argparse
import json
import logging
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
sys.path[1:1] = [str(PROJECT_DIR), str(PROJECT_DIR / "tests")]

import bcrypt  # noqa: E402
import requests  # noqa: E402

from naive import KEEP_FILES, SCHEDULE_SECONDS, naive_backup, naive_restore  # noqa: E402
from report import Report, Row, markdown, seconds, size, text_table, times  # noqa: E402
from rig import (idle_floor, AUTO_BACKUP, AUTO_RESTORE, KEEP_ALIVE, PROJECT_DIR as RIG_PROJECT_DIR, SERVICE_NAMES,  # noqa: E402
                 Bench, BenchError, Demo, LatencyProxy, Services, post_trigger, read_json, seed, wait_for)
from soak import SOAK_INTERVALS, SOAK_STATE_WRITE_INTERVAL, Soak, disk_per_day  # noqa: E402
from sleepguard.apply import restore_now  # noqa: E402
from sleepguard.backup import take_backup  # noqa: E402
from sleepguard.client import BackendClient  # noqa: E402
from sleepguard.runner import state_file_path  # noqa: E402
from sleepguard.services import SERVICES  # noqa: E402
from sleepguard.settings import SETTINGS  # noqa: E402
from sleepguard.snapshot import parse_utc_time  # noqa: E402
from sleepguard.store import LATEST_NAME, BackupStore  # noqa: E402
from helpers import shop_view  # noqa: E402
from chart import cost_chart  # noqa: E402
from curve import PIN as CURVE_PIN, synthetic_state  # noqa: E402
from sleepguard.atomicfile import write_json_atomic  # noqa: E402
from rig import clean_environ as clean_env  # noqa: E402

RESULTS_PATH = BENCH_DIR / "RESULTS.md"
REAL_PIN_HASH_ROUNDS = 12  # the real server's bcrypt cost
HASH_SAMPLES = 3
FIRST_OWNER_TARGET = 1.0  # seconds from the restore's start to the most active owner complete
BOUND_FACTOR = 1.1  # everyone back within this many times users x one hash
WORKER_CHOICES = (8, 16, 32)
CURVE_SIZES = (10, 200, 2000)
QUICK_CURVE_SIZES = (10, 50)
REAL_COST_CURVE_UP_TO = 200  # API restores at bcrypt 12 up to this size; beyond, at a low cost with the bound computed
LOW_PIN_HASH_ROUNDS = 4
CURVE_CUSTOMERS = 10
CURVE_STEPS = ("backup", "judge", "store", "restore_snapshot", "restore_api")
CHART_NAME = "cost_curve.svg"
LINEAR_SLACK = 1.33
MANUAL_BACKUP = RIG_PROJECT_DIR / "manual_backup.py"


def one_backup(settings):
    """One backup as manual_backup.py takes it: a client of its own, opened and closed."""
    with BackendClient(settings) as client:
        return take_backup(settings, client)
SLEEPGUARD_BACKUP_RUNS = 3


def one_hash_seconds(rounds=REAL_PIN_HASH_ROUNDS):
    """One bcrypt hash of a PIN at this cost on this machine: the median of a few."""
    runs = []
    for _ in range(HASH_SAMPLES):
        started = time.monotonic()
        bcrypt.hashpw(b"4000", bcrypt.gensalt(rounds))
        runs.append(time.monotonic() - started)
    return statistics.median(runs)


def last_created_at(state, owner=None):
    """The POSIX time of the newest created_at among the admin snapshot's users and customers (of owner only)."""
    ids = {user["id"] for user in state["users"] if owner is None or user["email"] == owner}
    records = [user for user in state["users"] if user["id"] in ids]
    records += [customer for customer in state["customers"] if customer["user_id"] in ids]
    return max(parse_utc_time(record["created_at"]).timestamp() for record in records)


def whole_process(command, env):
    """Run a command as its own process (interpreter start included); (seconds, stdout). BenchError if it fails."""
    started = time.monotonic()
    done = subprocess.run(command, cwd=RIG_PROJECT_DIR, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=600)
    took = time.monotonic() - started
    if done.returncode != 0:
        raise BenchError(f"{Path(command[1]).name} exited {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}")
    return took, done.stdout
WAKE_KEEP_ALIVE_INTERVAL = 1.0
JUST_NOW_NS = 200_000_000
SOAK_DEADLINE = 900
MB = 1_000_000


def restore_with_own_client(settings, backup):
    """One restore as restore_simple.py runs it: its own client, its own reads."""
    with BackendClient(settings) as client:
        return restore_now(settings, backup, client)


class Benchmark:
    """The steps of one run, in order; each leaves its figures in self.figures and a line on the screen."""

    def __init__(self, args, workdir, cleanup):
        self.args = args
        self.bench = Bench(workdir)
        self.cleanup = cleanup
        self.rtt = args.rtt / 1000
        self.figures = {}
        self.details = []

    def say(self, text):
        print(text, flush=True)

    def detail(self, text):
        self.details.append(text)

    def run(self):
        self.set_up()
        self.backups()
        self.whole_process_backups()
        self.snapshot_restore()
        self.real_cost_restore()
        soak = Soak(self.bench, self.demo.state(), self.args.iterations, self.cleanup)
        # The same soak with no ALERT_URLS, HEARTBEAT_URL or off-site copies, at the same time: what they cost in memory.
        plain = Soak(self.bench, self.demo.state(), self.args.iterations, self.cleanup, with_voice=False)
        for one in (soak, plain):
            one.start()
            self.cleanup.callback(one.stop)
        self.say(f"two soaks started in the background (niced), with and without alerts, heartbeat and off-site: "
                 f"3 services each, snapshot mode, until {self.args.iterations} iterations each")
        self.naive_timings()
        self.naive_restore_real_cost()
        self.say("waiting for the soak to finish ...")
        self.figures["soak"] = soak.finish(SOAK_DEADLINE)
        self.figures["soak_plain"] = plain.finish(SOAK_DEADLINE)
        self.figures["soak_seconds"] = max(soak.seconds, plain.seconds)
        self.say(f"soak done in {soak.seconds:.0f} s")
        self.services_session("babs10")
        self.services_session("snapshot")
        self.cost_curve()
        self.figures["idle_floor"] = idle_floor()
        self.say(f"three processes importing what the services import, no data: {size(self.figures['idle_floor'])} "
                 "of PSS together")
        return self.figures

    # --- set-up ---

    def set_up(self):
        self.demo = Demo(self.bench.workdir)
        self.cleanup.callback(self.demo.stop)
        self.proxy = LatencyProxy(self.demo.url, self.rtt, handshake=not self.args.no_handshake).start()
        self.cleanup.callback(self.proxy.stop)
        started = time.monotonic()
        # Seeded straight into the demo, concurrently: the network model is for what is measured.
        self.pins = seed(self.demo.url, self.args.users, self.args.customers)
        self.bench.write_pins(self.pins)
        self.expected = self.demo.view()
        self.say(f"seeded {self.args.users} users x {self.args.customers} customers in "
                 f"{time.monotonic() - started:.1f} s; network: {self.args.rtt:g} ms per round trip"
                 + ("" if self.args.no_handshake else " + one per new connection"))

    def settings(self, name, **overrides):
        return self.bench.settings(self.bench.data_dir(name), self.proxy.url, **overrides)

    def snapshot_overrides(self):
        return {"backend_mode": "snapshot", "api_token": self.demo.token}

    def check_data_back(self, what):
        if self.demo.view() != self.expected:
            raise BenchError(f"{what}: the back end does not hold the seeded data afterwards")

    def timed(self, call, proxy=None):
        """(answer, seconds, new connections) of one call through the proxy."""
        proxy = proxy or self.proxy
        connections, started = proxy.connections_opened, time.monotonic()
        answer = call()
        return answer, time.monotonic() - started, proxy.connections_opened - connections

    # --- one-shot backup and restore, both ways ---

    def backups(self):
        runs = []
        for number in range(SLEEPGUARD_BACKUP_RUNS):
            settings = self.settings(f"backup-{number}")
            outcome, took, connections = self.timed(lambda: one_backup(settings))
            if outcome.kind != "good":
                raise BenchError(f"sleepguard backup {number + 1} was {outcome.kind}: {outcome.reason}")
            runs.append(took)
            if number == 0:
                self.api_settings = settings
                self.detail(f"sleepguard backup: {connections} new connections; data_backup.json "
                            f"{size((settings.data_dir / LATEST_NAME).stat().st_size)}")
        self.figures["backup_sleepguard"] = statistics.median(runs)
        self.detail("sleepguard backup runs (each into a fresh DATA_DIR, default settings, BACKUP_WORKERS "
                    f"{SETTINGS['BACKUP_WORKERS'][0]}): "
                    + ", ".join(seconds(run) for run in runs) + "; the table shows the median")
        settings = self.settings("snapshot-backup", **self.snapshot_overrides())
        outcome, took, _ = self.timed(lambda: one_backup(settings))
        if outcome.kind != "good":
            raise BenchError(f"sleepguard snapshot-mode backup was {outcome.kind}: {outcome.reason}")
        self.snapshot_settings = settings
        self.figures["backup_sleepguard_snapshot"] = took
        self.detail(f"sleepguard backup in snapshot mode (one GET of the whole state): {seconds(took)}")
        self.say(f"backup: sleepguard {seconds(self.figures['backup_sleepguard'])} (median of {len(runs)}), "
                 f"snapshot mode {seconds(took)}")

    def whole_process_backups(self):
        """manual_backup.py and the naive backup as whole processes, interpreter start included, side by side."""
        runs = []
        for number in range(SLEEPGUARD_BACKUP_RUNS):
            env = self.bench.service_env(self.bench.data_dir(f"process-backup-{number}"), self.proxy.url)
            runs.append(whole_process([sys.executable, str(MANUAL_BACKUP)], env)[0])
        self.figures["backup_process_sleepguard"] = statistics.median(runs)
        by_workers = {}
        for workers in WORKER_CHOICES:
            env = self.bench.service_env(self.bench.data_dir(f"process-backup-w{workers}"), self.proxy.url,
                                         backup_workers=workers)
            by_workers[workers] = whole_process([sys.executable, str(MANUAL_BACKUP)], env)[0]
        self.figures["backup_process_by_workers"] = by_workers
        path = self.bench.workdir / "naive_backup_process.json"
        took, _ = whole_process([sys.executable, str(BENCH_DIR / "naive.py"), "backup", self.proxy.url, str(path)],
                                clean_env())
        self.figures["backup_process_naive"] = took
        self.detail("whole-process backups (python3 manual_backup.py, default settings, BACKUP_WORKERS "
                    f"{self.api_settings.backup_workers}): " + ", ".join(seconds(run) for run in runs)
                    + "; by BACKUP_WORKERS: " + ", ".join(f"{w}: {seconds(t)}" for w, t in by_workers.items())
                    + f"; naive as a whole process (python3 benchmarks/naive.py backup): {seconds(took)}")
        self.say(f"backup as whole processes: sleepguard {seconds(self.figures['backup_process_sleepguard'])}, "
                 f"naive {seconds(took)}; by workers "
                 + ", ".join(f"{w}: {seconds(t)}" for w, t in by_workers.items()))

    def real_cost_restore(self):
        """An API-mode restore on a demo hashing PINs at the real cost: first owner, everyone, beside the bound."""
        hash_seconds = one_hash_seconds()
        self.demo12 = Demo(self.bench.workdir, "demo-cost12", pin_hash_rounds=REAL_PIN_HASH_ROUNDS)
        self.cleanup.callback(self.demo12.stop)
        self.demo12.put_state(self.demo.state())
        self.proxy12 = LatencyProxy(self.demo12.url, self.rtt, handshake=not self.args.no_handshake).start()
        self.cleanup.callback(self.proxy12.stop)
        # The owner working last: not the first nor the last seeded, so only the trigger can put them first.
        owner = f"owner{self.args.users // 2}@example.com"
        post_trigger(self.demo12.url, "save", user=owner)
        settings = self.bench.settings(self.bench.data_dir("cost12"), self.proxy12.url)
        outcome = one_backup(settings)
        if outcome.kind not in ("good", "unchanged"):
            raise BenchError(f"the backup on the real-cost demo was {outcome.kind}: {outcome.reason}")
        backup = BackupStore(settings).latest_good_backup()
        recorded = backup.meta.get("recent_trigger_users")
        expected = shop_view(self.demo12.state())
        self.demo12.sleep_now()
        with BackendClient(settings) as client:
            started, started_wall = time.monotonic(), time.time()
            current = client.read_snapshot()
            read_seconds = time.monotonic() - started
            report = restore_now(settings, backup, client, current=current)
            took = time.monotonic() - started
        if not report.complete:
            raise BenchError(f"the real-cost API-mode restore is not complete: {report.missing[:5]}")
        if shop_view(self.demo12.state()) != expected:
            raise BenchError("the real-cost API-mode restore: the back end does not hold the seeded data afterwards")
        result = report.result
        # Back is when the last record is on the back end (the demo's own created_at, the same machine's clock),
        # from the start of the restore's read, planning included; the verifying read after it is our own check.
        restored = self.demo12.state()
        first = None if result.first_owner is None else last_created_at(restored, result.first_owner) - started_wall
        back = last_created_at(restored) - started_wall
        signin_started = time.monotonic()
        answer = requests.post(f"{self.proxy12.url}/api/users/signin", json={"email": owner, "pin": self.pins[owner]},
                               timeout=60)
        signin = time.monotonic() - signin_started
        users = self.args.users
        self.figures["real_cost"] = {
            "hash_seconds": hash_seconds, "bound": users * hash_seconds, "first_owner": result.first_owner,
            "expected_owner": owner, "first_seconds": first, "all_seconds": back, "verified_seconds": took,
            "read_seconds": read_seconds,
            "signin_status": answer.status_code, "signin_seconds": signin, "recorded_triggers": recorded,
            "users_created": result.users_created, "customers_created": result.customers_created}
        self.say(f"restore at the real PIN cost (bcrypt {REAL_PIN_HASH_ROUNDS}, {seconds(hash_seconds)} a hash here): "
                 f"first owner {result.first_owner} complete after {seconds(first)}, everyone after {seconds(back)} "
                 f"(verified after {seconds(took)}) "
                 f"(bound {seconds(users * hash_seconds)}); {owner} signs in with their own PIN: {answer.status_code} "
                 f"in {seconds(signin)}")

    def naive_restore_real_cost(self):
        """The naive restore on the real-cost demo, from the naive backup of the same shop."""
        self.demo12.sleep_now()
        path = self.bench.workdir / "naive_backup.json"
        (created, failed), took, _ = self.timed(lambda: naive_restore(self.proxy12.url, path, self.pins),
                                                proxy=self.proxy12)
        if failed:
            raise BenchError(f"the naive restore at the real cost failed on {failed} records")
        self.figures["restore_naive"] = took
        self.detail(f"naive restore (at the real PIN cost): {created} POSTs, {seconds(took)}, "
                    f"{took / created * 1000:.1f} ms per request (network model {self.model_request_seconds() * 1000:.0f} "
                    "ms + the server hashing each user's PIN); timed while the soak ran niced in the background")
        self.say(f"restore after a wipe at the real PIN cost: naive {seconds(took)}")

    def cost_curve(self):
        """Each step as its own process at each size, straight at the demo: time and peak memory per size."""
        sizes = QUICK_CURVE_SIZES if self.args.quick else CURVE_SIZES
        hash_seconds = self.figures["real_cost"]["hash_seconds"]
        points = []
        for users in sizes:
            real_cost = users <= REAL_COST_CURVE_UP_TO and not self.args.quick
            rounds = REAL_PIN_HASH_ROUNDS if real_cost else LOW_PIN_HASH_ROUNDS
            demo = Demo(self.bench.workdir, f"curve-demo-{users}", pin_hash_rounds=rounds)
            try:
                state = synthetic_state(users, CURVE_CUSTOMERS)
                demo.put_state(state)
                pins = self.bench.workdir / f"curve-pins-{users}.json"
                write_json_atomic(pins, {user["email"]: CURVE_PIN for user in state["users"]})
                api_env = self.bench.service_env(self.bench.data_dir(f"curve-{users}"), demo.url, pins_file=pins)
                snap_env = self.bench.service_env(self.bench.data_dir(f"curve-{users}-snapshot"), demo.url,
                                                  backend_mode="snapshot", api_token=demo.token)
                point = {"users": users, "customers": users * CURVE_CUSTOMERS, "pin_rounds": rounds,
                         "real_cost_bound": users * hash_seconds}
                for step, env in (("backup", api_env), ("judge", api_env), ("store", api_env),
                                  ("backup_snapshot", snap_env), ("restore_snapshot", snap_env),
                                  ("restore_api", api_env)):
                    if step.startswith("restore"):
                        demo.sleep_now()
                    _took, out = whole_process([sys.executable, str(BENCH_DIR / "curve.py"),
                                                step.replace("_snapshot", "") if step == "backup_snapshot" else step],
                                               env)
                    point[step] = json.loads(out.strip().splitlines()[-1])
            finally:
                demo.stop()
            points.append(point)
            self.say(f"cost curve, {users} users × {CURVE_CUSTOMERS}: " + ", ".join(
                f"{step} {seconds(point[step]['seconds'])}/{size(point[step]['peak_rss'])}" for step in CURVE_STEPS))
        self.figures["curve"] = points
        svg_path = self.args.output.with_name(CHART_NAME)
        svg_path.parent.mkdir(parents=True, exist_ok=True)  # --output may name a folder that is not there yet
        svg_path.write_text(cost_chart(points, CURVE_STEPS))
        self.figures["chart"] = svg_path

    def snapshot_restore(self):
        backup = BackupStore(self.snapshot_settings).latest_good_backup()
        self.demo.sleep_now()
        report, took, _ = self.timed(lambda: restore_with_own_client(self.snapshot_settings, backup))
        if not report.complete:
            raise BenchError(f"sleepguard snapshot-mode restore is not complete: {report.missing[:5]}")
        self.check_data_back("sleepguard snapshot-mode restore")
        self.figures["restore_snapshot_sleepguard"] = took
        self.detail("sleepguard snapshot-mode restore: read (empty), one PUT of the whole state, verifying read: "
                    f"{seconds(took)}")
        self.say(f"restore after a wipe, snapshot mode: sleepguard {seconds(took)}")

    def naive_timings(self):
        path = self.bench.workdir / "naive_backup.json"
        counts, took, connections = self.timed(lambda: naive_backup(self.proxy.url, path))
        if counts["customers"] != self.args.users * self.args.customers:
            raise BenchError(f"the naive backup read {counts}, not the whole shop")
        requests_made = 1 + counts["users"]
        self.figures["backup_naive"] = took
        self.figures["naive_file_size"] = path.stat().st_size
        self.detail(f"naive backup: {requests_made} requests, {connections} new connections, "
                    f"{took / requests_made * 1000:.1f} ms per request (the network model accounts for "
                    f"{self.model_request_seconds() * 1000:.0f} ms); file {size(path.stat().st_size)}")
        self.say(f"backup: naive {seconds(took)}")

    def model_request_seconds(self):
        return self.rtt * (1 if self.args.no_handshake else 2)

    # --- the services running ---

    def services_session(self, mode):
        """Run the three services with the default intervals: backup delay, recovery by schedule, recovery by wake."""
        overrides = {} if mode == "babs10" else self.snapshot_overrides()
        services = Services(self.bench, self.bench.data_dir(f"services-{mode}"), self.proxy.url, **overrides)
        self.cleanup.callback(services.stop_all)
        # A shop in use has saves behind it: the app's trigger counter is above zero.
        for number in range(3):
            post_trigger(self.demo.url, f"save {number}")
        self.expected = self.demo.view()
        services.start(AUTO_BACKUP)
        services.wait_state(AUTO_BACKUP, lambda s: s["last_figures"].get("last_good_backup_at")
                            and s["last_figures"].get("trigger_count"), 60, "the first good backup")
        services.start(AUTO_RESTORE)
        services.start(KEEP_ALIVE)
        services.wait_state(AUTO_RESTORE, lambda s: s["last_outcome"] == "ok", 60, "its first wipe check")
        services.wait_state(KEEP_ALIVE, lambda s: s["last_outcome"] == "ok", 30, "its first ping")
        label = "API mode" if mode == "babs10" else "snapshot mode"
        self.say(f"services running ({label}, default intervals)")
        if mode == "babs10":
            self.figures["backup_delay"] = self.backup_delay(services)
        self.figures[f"recovery_default_{mode}"] = self.recovery(services, wake=False, label=label)
        services.stop(KEEP_ALIVE)
        services.start(KEEP_ALIVE, keep_alive_interval=WAKE_KEEP_ALIVE_INTERVAL)
        services.wait_state(KEEP_ALIVE, lambda s: s["last_outcome"] == "ok", 30, "its first ping")
        self.figures[f"recovery_wake_{mode}"] = self.recovery(services, wake=True, label=label)
        self.figures[f"memory_{mode}"] = services.memory()
        services.stop_all()

    def right_after_a_poll(self, services):
        """Return just after the auto-backup's trigger poll: anything now waits the whole poll interval, the worst case."""
        path = state_file_path(services.data_dir, AUTO_BACKUP)
        written = path.stat().st_mtime_ns
        if time.time_ns() - written > JUST_NOW_NS:
            wait_for(lambda: path.stat().st_mtime_ns != written, 60, "the auto-backup's next trigger poll", poll=0.01)

    def backup_delay(self, services):
        """Save a change as the front end does (the change, then the trigger) and time until a good backup holds it."""
        customer = self.demo.state()["customers"][-1]
        money = 5000.75
        self.right_after_a_poll(services)
        answer = requests.put(f"{self.demo.url}/api/customers/{customer['id']}", params={"user_id": customer["user_id"]},
                              json={"money_given": money}, timeout=10)
        answer.raise_for_status()
        post_trigger(self.demo.url, "save")
        saved_at = time.monotonic()
        path, seen = services.data_dir / LATEST_NAME, {}

        def holds_change():
            try:
                stat = path.stat()
            except FileNotFoundError:
                return False
            if seen.get("key") == (stat.st_ino, stat.st_mtime_ns):
                return False
            seen["key"] = (stat.st_ino, stat.st_mtime_ns)
            document = read_json(path)
            return bool(document) and any(c["id"] == customer["id"] and c["money_given"] == money
                                          for user in document["content"]["users"] for c in user["customers"])

        wait_for(holds_change, 60, "a backup holding the saved change")
        took = time.monotonic() - saved_at
        self.expected = self.demo.view()
        self.say(f"backup delay after a save: {seconds(took)}")
        return took

    def recovery(self, services, wake, label):
        """Wipe the back end (behind a spell of 502s when wake) and time until the restore service verified it all back."""
        restores_before = services.figures(AUTO_RESTORE).get("restores", 0)
        if wake:
            self.proxy.host_down()
            down_at = time.monotonic()
            self.demo.sleep_now()
            services.wait_state(KEEP_ALIVE, lambda s: s["last_figures"].get("consecutive_failures", 0) >= 1, 90,
                                "a failed ping")
            self.proxy.normal()
        else:
            self.right_after_a_poll(services)
            self.demo.sleep_now()
        up_at = time.monotonic()
        state = services.wait_state(AUTO_RESTORE, lambda s: s["last_figures"].get("restores", 0) > restores_before,
                                    240, "a verified restore")
        done_at = time.monotonic()
        self.check_data_back(f"restore service ({label})")
        first_health = next((at for at in self.proxy.health_passed if at >= up_at), None)
        result = {"from_up": done_at - up_at, "restore_iteration": state["last_duration"],
                  "from_health": None if first_health is None else done_at - first_health,
                  "summary": state["last_summary"]}
        if wake:
            result["down_seconds"] = up_at - down_at
        restored_at = parse_utc_time(state["last_figures"]["last_restore_at"]).timestamp()
        # A backup of the restored data is unchanged, which only touches data_backup.json (the state file may wait).
        latest = services.data_dir / LATEST_NAME
        wait_for(lambda: latest.stat().st_mtime > restored_at, 150, "a fresh backup of the restored data")
        if wake:
            self.say(f"recovery with the keep-alive wake, {label}: {seconds(result['from_health'])} from the first "
                     f"good health answer ({seconds(result['from_up'])} from the host answering again, after "
                     f"{result['down_seconds']:.0f} s of 502s)")
        else:
            self.say(f"recovery with default intervals, {label}: {seconds(result['from_up'])}")
        return result


# --- the table ---

def table_rows(args, f):
    """The rows: each figure both ways where the naive scripts have one, its target and whether it held."""
    rows = []
    backup_ratio = f["backup_naive"] / f["backup_sleepguard"]
    rows.append(Row(f"backup, {args.users}×{args.customers}, {args.rtt:g} ms RTT", seconds(f["backup_sleepguard"]),
                    seconds(f["backup_naive"]), times(backup_ratio), "≥ 10× faster", backup_ratio >= 10,
                    backup_why(args, backup_ratio)))
    process_ratio = f["backup_process_naive"] / f["backup_process_sleepguard"]
    rows.append(Row(f"backup as a whole process (interpreter start included, default settings)",
                    seconds(f["backup_process_sleepguard"]), seconds(f["backup_process_naive"]), times(process_ratio),
                    "≥ 10× faster", process_ratio >= 10,
                    f"{backup_why(args, process_ratio)} Both pay the interpreter's start and imports besides."))
    real = f["real_cost"]
    rows.append(Row(f"one PIN hash here (bcrypt {REAL_PIN_HASH_ROUNDS}); server bound = {args.users} × it",
                    f"{seconds(real['hash_seconds'])}; bound {seconds(real['bound'])}", "same server", "—"))
    first_ok = real["first_seconds"] is not None and real["first_seconds"] <= FIRST_OWNER_TARGET \
        and real["first_owner"] == real["expected_owner"] and real["signin_status"] == 200
    rows.append(Row("restore after a wipe, API mode, at the real PIN cost: most active owner complete (then signs in with own PIN)",
                    f"{seconds(real['first_seconds'])} ({'the owner who saved last' if real['first_owner'] == real['expected_owner'] else 'NOT the owner who saved last'}; "
                    f"sign-in {real['signin_status']} in {seconds(real['signin_seconds'])})",
                    f"{seconds(f['restore_naive'])} (all at the end)",
                    times(f["restore_naive"] / real["first_seconds"]) if real["first_seconds"] else "—",
                    f"≤ {FIRST_OWNER_TARGET:g} s", first_ok))
    rows.append(Row("restore after a wipe, API mode, at the real PIN cost: everyone back (then verified)",
                    f"{seconds(real['all_seconds'])} ({seconds(real['verified_seconds'])})", seconds(f["restore_naive"]), times(f["restore_naive"] / real["all_seconds"]),
                    f"≤ {BOUND_FACTOR:g} × bound ({seconds(BOUND_FACTOR * real['bound'])})",
                    real["all_seconds"] <= BOUND_FACTOR * real["bound"],
                    f"The bound is the server's hashing alone; the rest, {seconds(real['all_seconds'] - real['bound'])},"
                    f" is the read before, the first owner's customers before the other accounts, and the customers "
                    f"after the last account, round trips that weigh more the smaller the shop ({args.users} users)."))
    snapshot = f["restore_snapshot_sleepguard"]
    rows.append(Row("restore after a wipe, snapshot mode", seconds(snapshot), seconds(f["restore_naive"]),
                    times(f["restore_naive"] / snapshot), "< 1 s", snapshot < 1))
    naive_recovery = SCHEDULE_SECONDS / 2 + f["restore_naive"]
    poll = default_seconds("TRIGGER_POLL_INTERVAL")
    for mode, label in (("babs10", "API mode, PIN cost 4"), ("snapshot", "snapshot mode")):
        result = f[f"recovery_default_{mode}"]
        worst = result["from_up"]
        average = worst - poll / 2
        rows.append(Row(f"recovery after a sleep, default intervals, {label}",
                        f"{seconds(worst)} worst, {seconds(average)} avg", f"{seconds(naive_recovery)} avg (computed)",
                        times(naive_recovery / average), "< 20 s", worst < 20,
                        f"Missed by {seconds(worst - 20)}. {recovery_why(args, mode, result)} The wait before the restore "
                        f"starts, up to one trigger poll ({poll:g} s), is the rest."))
    for mode, label in (("babs10", "API mode, PIN cost 4"), ("snapshot", "snapshot mode")):
        result = f[f"recovery_wake_{mode}"]
        measured = result["from_health"]
        rows.append(Row(f"recovery with the keep-alive wake, {label}", seconds(measured),
                        f"{seconds(naive_recovery)} avg (computed)",
                        times(naive_recovery / measured) if measured else "—", "< 3 s",
                        measured is not None and measured < 3,
                        f"Missed by {seconds(measured - 3)}. {recovery_why(args, mode, result)}" if measured else ""))
    worst = f["backup_delay"]
    average = worst - poll / 2
    naive_delay = SCHEDULE_SECONDS / 2 + f["backup_naive"]
    rows.append(Row("backup delay after a save", f"{seconds(worst)} worst, {seconds(average)} avg",
                    f"{seconds(naive_delay)} avg (computed)", times(naive_delay / average, "sooner"),
                    "< 20 s", worst < 20))
    disk = disk_per_day(f["soak"])
    naive_disk = f["naive_file_size"] * 86400 / SCHEDULE_SECONDS
    rows.append(Row("disk written per day, unchanged data: backup files", size(disk["backup_data"]), size(naive_disk),
                    "—", "0 B", disk["backup_data"] == 0))
    rows.append(Row("disk written per day, unchanged data: state files and logs", size(disk["state_and_logs"]),
                    "not measured", "—", "< 1 MB", disk["state_and_logs"] < MB))
    storage = disk["storage_writes"]
    if storage is not None:
        rows.append(Row("disk written per day, unchanged data: all the three services write (storage writes, "
                        "page-rounded, file-system metadata included)", size(storage), size(naive_disk), "—", "< 1 MB",
                        storage < MB, "Each write costs at least a whole 4 kB page and the file system's own records "
                        "of it; the state files and logs row above counts the bytes themselves."))
    naive_depth_minutes = KEEP_FILES * SCHEDULE_SECONDS / 60
    rows.append(Row("history depth kept", f"{args.keep_daily} days", f"{naive_depth_minutes:.0f} min",
                    times(args.keep_daily * 24 * 60 / naive_depth_minutes, "deeper")))
    peak_pss = f["soak"]["peak_pss_sum"]
    rows.append(Row(f"three services together, shared pages once: peak sum of PSS (soak, ≥ {args.iterations} "
                    "iterations each, through a wipe and its restore)", size(peak_pss), "—", "—", "≤ 80 MB",
                    peak_pss <= 80 * MB, memory_why(args, f)))
    plain = f["soak_plain"]
    configured = ", ".join(f"{service.title} {size(f['soak'][service.name]['peak_rss'])}" for service in SERVICES)
    bare = ", ".join(f"{service.title} {size(plain[service.name]['peak_rss'])}" for service in SERVICES)
    rows.append(Row("memory with ALERT_URLS, HEARTBEAT_URL and off-site copies set: peak sum of PSS; peak RSS each "
                    "(same soak beside it without them)",
                    f"{size(peak_pss)}; {configured}", f"without: {size(plain['peak_pss_sum'])}; {bare}",
                    f"{peak_pss / plain['peak_pss_sum']:.2f}× the memory" if plain["peak_pss_sum"] else "—"))
    total_peak = sum(peak_memory(f).values())
    rows.append(Row("peak RSS (VmHWM) of the three added up, shared pages counted three times", size(total_peak),
                    "—", "—"))
    return rows


def method_notes(args):
    """How each figure was taken, for RESULTS.md."""
    rtt = f"{args.rtt:g} ms"
    handshake = ("" if args.no_handshake else
                 f", and every new TCP connection one more {rtt} before its first request (the handshake; over HTTPS, "
                 "as the real host is reached, TLS would add one or two more, so the naive figures here are kind to it)")
    soak_intervals = ", ".join(f"{name.upper()}={value:g}" for name, value in SOAK_INTERVALS.items())
    return [
        f"Network: the demo back end (`python3 -m sleepguard.demo_backend`, a real process) sits behind "
        f"`tests/fault_proxy.py` (a `latency` fault of {rtt}): every request waits one round trip{handshake}. "
        "The shop is seeded straight into the demo, concurrently, with one order per customer and a few saves.",
        "sleepguard one-shot figures call the library in-process with the default settings "
        f"(BACKUP_WORKERS={SETTINGS['BACKUP_WORKERS'][0]}, RESTORE_WORKERS={SETTINGS['RESTORE_WORKERS'][0]}, one pooled "
        "connection set): `take_backup(settings)` and `restore_now(settings, backup)`, the restore including its own "
        "reads before and its full verifying read after.",
        "naive: the way the earlier scripts worked: one request at a time, each on a new connection "
        "(`requests.get`/`post` without a session, `Connection: close`); backup = GET /api/users, then GET "
        "/api/customers?user_id= per user, one flat JSON file (indent 2); restore = POST each user, then each "
        "customer. It is given each customer's owner in its file (the earlier scripts lost it) so that its "
        "restore can be checked; that costs no request. It checks nothing and its timings include no verification.",
        "Recovery, default intervals: the three services run as real processes (the `*.py` commands) with every "
        "interval at its default. The back end is wiped (admin sleep, as when the host restarts) and the clock runs "
        "from that moment until the restore service's state file records a verified restore; the data is then "
        "checked independently. Nothing wakes the restore service but the auto-backup's trigger poll (every 15 s) "
        "seeing the app's save counter drop to zero, or its own 60 s check. The wipe is timed to land just after a "
        "trigger poll, so the figure is the worst case; a wipe at a random moment waits 7.5 s less on average "
        "(the 'avg' figure, computed from the measured worst case).",
        f"Recovery with the wake: the same, but with KEEP_ALIVE_INTERVAL={WAKE_KEEP_ALIVE_INTERVAL:g} s; the host "
        "is simulated asleep with the proxy answering 502 to everything and the data wiped, until a whole ping has "
        "failed (three quick tries with retries); then the host answers again. The clock runs from the first "
        "health answer that passed the proxy after that (the keep-alive's) to the verified restore.",
        f"naive recovery is computed, not measured: the earlier scripts checked on a fixed {SCHEDULE_SECONDS} s "
        f"schedule, so on average half of that ({SCHEDULE_SECONDS / 2:.0f} s) passes before their restore starts, "
        "plus the naive restore time measured above. naive backup delay likewise: half the schedule plus the "
        "naive backup time.",
        "Backup delay: with the services running at the default intervals, a customer is changed and the trigger "
        "called, as the front end does on save, just after a trigger poll (the worst case; 'avg' is 7.5 s less); "
        "the clock runs until data_backup.json holds the change.",
        f"Soak: the three services run with tiny intervals ({soak_intervals}) in snapshot mode (a wipe check in API "
        f"mode is a whole {args.users + 1}-request read, too slow for {args.iterations} iterations in the time "
        "budget) on their own demo back end holding the same shop, unchanged, at the lowest CPU priority while the "
        "naive baseline (which only waits on the network) was timed. Each service is measured and stopped once its "
        "state file shows the target iterations.",
        "Disk per day: backup files (data_backup.json and auto_backups_super/) newly written during the soak's "
        "unchanged backups, per backup, times 720 backups a day (BACKUP_INTERVAL 120 s); an unchanged backup only "
        "touches data_backup.json's modification time (it says when the copy was last verified). State files and "
        "logs: a round that changes nothing only touches its state file (the mtime is the last run) and logs its "
        "line at DEBUG; the file is rewritten and the line logged at INFO on a change or once every "
        f"STATE_WRITE_INTERVAL ({SETTINGS['STATE_WRITE_INTERVAL'][0]} s by default). The soak runs that clock at "
        f"{SOAK_STATE_WRITE_INTERVAL:g} s; what it logged per clock period plus the state file's size, times the "
        "periods in a day at the default clock, is the figure (iterations themselves no longer write). The storage "
        "figure (psutil write_bytes, page-rounded, with file-system metadata) is scaled the same way. naive: one "
        "full file every 2 minutes.",
        f"History depth: sleepguard keeps every change among the newest KEEP_LAST={args.keep_last}, one per hour "
        f"for KEEP_HOURLY={args.keep_hourly} h and one per day for KEEP_DAILY={args.keep_daily} days (defaults); "
        f"and a wiped read never counts towards it. naive: keep-last-{KEEP_FILES} files every 2 minutes.",
        "Memory together: the sum of the three services' PSS (from /proc/PID/smaps_rollup: each shared page "
        "counted by its share, so shared pages once in all), sampled every 0.25 s through the soak, its wipe and its "
        "restore included; the peak of the sum. The soak runs with ALERT_URLS and HEARTBEAT_URL pointed at a local "
        "receiver (apprise's json:// target) and the off-site settings at moto's S3 server: the keep-alive judges "
        "and tells each round, and every new good backup is encrypted and queued; apprise and the S3 client load only "
        "in the short-lived sender and uploader, which are not counted. A second soak runs at the same time, the "
        "same in all but those settings (no ALERT_URLS, HEARTBEAT_URL or off-site copies), on a demo of its own: "
        "the memory row with them and without is the two side by side.",
        f"Real PIN cost: a second demo back end hashes PINs at bcrypt {REAL_PIN_HASH_ROUNDS} (the real server's "
        "cost), serialised as the real event loop does, behind the same latency; it holds the same shop. An owner "
        "in the middle of the list sends the last trigger, then a backup is taken, the back end wiped and an "
        "API-mode restore run with the library (its own read first). 'Most active owner complete' is from the "
        "start of that read (planning included) to the created_at the demo gave that owner's last record (the same "
        "machine's clock); the owner then signs in with the PIN from the PIN file. 'Everyone back' is from the same "
        "start to the created_at of the last record of all; in brackets, to the end of the verifying read after it. One hash is timed with the bcrypt package in the benchmark's process; the bound is users × "
        "that. The naive restore runs against the same demo. Both before the soak starts, so nothing competes "
        "for the CPU but the naive restore, which runs while the niced soak does.",
        "Whole processes: `python3 manual_backup.py` with default settings into a fresh DATA_DIR (median of 3), "
        "and at BACKUP_WORKERS 8, 16 and 32; naive: `python3 benchmarks/naive.py backup URL FILE`. Interpreter "
        "start and imports included in both.",
        "Cost curve: a shop of N users × 10 customers is put into a fresh demo whole (admin snapshot PUT, every "
        "owner PIN 4000); each step runs as its own process (`benchmarks/curve.py STEP`) straight at the demo, no "
        "latency: backup (read + store, API mode), judge (wipe.judge_read of a fresh read against the last good "
        "backup), store (record an unchanged read), snapshot-mode restore, API-mode restore (each after a wipe, "
        "verified). Time is the step's own, after its imports; memory is the process's VmHWM, the interpreter "
        "included (about 30 MB of it is there before any data).",
        "Peak RSS: VmHWM (the high-water mark of resident memory) of each service process, the highest of the soak "
        "and of the two runs with the services at default intervals (API mode, which includes two restores, and "
        "snapshot mode); the three peaks are added, though they need not happen at once. Each is a whole Python "
        "process: the interpreter with requests, urllib3 and psutil imported is about 34 MB of RSS before any data, "
        "some 12 MB of it pages shared with every other Python process (the interpreter, libssl): added up, those "
        "count three times, which the PSS row does not.",
    ]


def curve_lines(f):
    """The cost curve, size by size, and where growth is not linear."""
    points = f["curve"]
    lines = [f"cost curve (chart: {CHART_NAME}; each step its own process straight at the demo, no latency; "
             "time of the step after the imports, peak = the process's VmHWM, interpreter included):"]
    for point in points:
        cost = (f"API restore at bcrypt {point['pin_rounds']}" +
                ("" if point["pin_rounds"] == REAL_PIN_HASH_ROUNDS else
                 f"; at the real cost it would take at least {seconds(point['real_cost_bound'])} (users × one hash)"))
        lines.append(f"{point['users']} users × {CURVE_CUSTOMERS}: " + ", ".join(
            f"{step} {seconds(point[step]['seconds'])} / {size(point[step]['peak_rss'])}" for step in CURVE_STEPS)
            + f" ({cost})")
    for before, after in zip(points, points[1:]):
        grow = after["users"] / before["users"]
        # Across a change of PIN cost the API restore's times measure different servers: no ratio.
        ratios = {step: after[step]["seconds"] / before[step]["seconds"] for step in CURVE_STEPS
                  if before[step]["seconds"] and (step != "restore_api" or before["pin_rounds"] == after["pin_rounds"])}
        lines.append(f"growth {before['users']} → {after['users']} users (× {grow:g}): time × " + ", ".join(
            f"{step} {ratio:.1f} ({growth_word(ratio, grow)})" for step, ratio in ratios.items()))
    lines.append("below linear from a small shop means a fixed part of the step (one round trip, setting up "
                 "connections, an fsync, one request's overhead in the demo) is most of its time there; the API "
                 "restore at the real cost is one PIN hash per user, one after another: linear by the server's rule. "
                 "A figure above linear on a loaded machine (see the load average) is more likely the load than the "
                 "code: compare with the next run.")
    return lines


def growth_word(ratio, grow):
    """linear, below or above, for a time ratio against the size ratio (a third either way counts as linear)."""
    if ratio < grow / LINEAR_SLACK:
        return "below linear"
    return "above linear" if ratio > grow * LINEAR_SLACK else "linear"


def raw_figures(f, details):
    """The figures behind the table, for RESULTS.md."""
    lines = list(details)
    real = f["real_cost"]
    lines.append(f"real-cost restore: {real['users_created']} users, {real['customers_created']} customers; the read "
                 f"before it {seconds(real['read_seconds'])}; first owner {real['first_owner']} (expected "
                 f"{real['expected_owner']}, who sent the last trigger; backup.meta recent_trigger_users: "
                 f"{real['recorded_triggers']!r}); the owner's sign-in with their own PIN answered "
                 f"{real['signin_status']} in {seconds(real['signin_seconds'])}")
    lines.append(f"soak: peak sum of the three services' PSS {size(f['soak']['peak_pss_sum'])}; its wipe was "
                 f"restored after {seconds(f['soak']['wipe']['restored_after'])}: \"{f['soak']['wipe']['summary']}\"")
    lines += curve_lines(f)
    soak = f["soak"]
    for name in SERVICE_NAMES:
        service = soak[name]
        per_iteration = service["write_bytes_per_iteration"]
        lines.append(
            f"soak {name}: {service['iterations']} iterations; RSS {size(service['rss_at_warmup'])} after "
            f"{service['warmup_iterations']} iterations, {size(service['rss'])} at the end (of it unique to the "
            f"process, USS: {size(service['uss'])}), peak {size(service['peak_rss'])}; state file "
            f"{size(service['state_file_bytes'])}, log {service['log_bytes_per_iteration']:.0f} B per iteration; "
            "storage writes (psutil write_bytes, page-rounded, with file-system metadata) "
            f"{'not counted here' if per_iteration is None else size(per_iteration) + ' per iteration'}")
    backup = soak["backup_data"]
    lines.append(f"soak backup data: {backup['backups']} backups of unchanged data ({backup['unchanged']} unchanged, "
                 f"{backup['good']} good) wrote {backup['files']} backup files, {size(backup['bytes'])}")
    disk = disk_per_day(soak)
    if disk["storage_writes"] is not None:
        lines.append("all storage writes of the three services (psutil write_bytes) extrapolated to the default "
                     f"intervals: {size(disk['storage_writes'])} a day")
    lines.append(f"naive disk per day: {size(f['naive_file_size'])} × {86400 // SCHEDULE_SECONDS} backups")
    for mode in ("babs10", "snapshot"):
        lines.append(f"services at default intervals, {mode} mode, peak RSS: "
                     + ", ".join(f"{name} {size(figures['peak_rss'])}" for name, figures in f[f"memory_{mode}"].items()))
        for kind in ("default", "wake"):
            result = f[f"recovery_{kind}_{mode}"]
            extra = (f"; {seconds(result['from_health'])} from the keep-alive's first good answer, after "
                     f"{result['down_seconds']:.0f} s of 502s") if kind == "wake" else ""
            lines.append(f"recovery ({kind}, {mode} mode): {seconds(result['from_up'])} from the host answering "
                         f"again{extra}; the restore iteration took {seconds(result['restore_iteration'])}: "
                         f"\"{result['summary']}\"")
    lines.append("peak RSS used per service: " + ", ".join(f"{name} {size(peak)}" for name, peak in peak_memory(f).items()))
    lines.append(f"the soak took {f['soak_seconds']:.0f} s of wall time, in the background")
    return lines


def build_report(args, figures, details, runtime, started_at, load):
    parameters = {"round trip": f"{args.rtt:g} ms", "new-connection handshake": "off" if args.no_handshake else "on",
                  "shop": f"{args.users} users × {args.customers} customers (one order each)",
                  "soak iterations": args.iterations,
                  "load average (1 min) at start and end": " and ".join(f"{value:.1f}" for value in load)}
    command = " ".join(["python3 benchmarks/run.py", *map(shlex.quote, sys.argv[1:])])
    return Report(table_rows(args, figures), command, started_at, runtime, parameters, method_notes(args),
                  raw_figures(figures, details), chart=figures["chart"].name)


def backup_why(args, ratio):
    """Why a backup is as much faster as it is: round trips in waves against one after another."""
    workers = int(SETTINGS["BACKUP_WORKERS"][0])
    waves = -(-(args.users + 1) // workers)
    return (f"Missed by {10 / ratio:.1f}×. A backup is {args.users + 1} reads: {workers} at a time they are {waves} "
            f"waves of round trips, one after another the naive way {args.users + 1}. The fixed part (connections, "
            "judging, files written and synced) weighs more the smaller the shop; the ratio grows with it.")


def recovery_why(args, mode, result):
    """Why a recovery by the services takes the time it does, from that run's own figures."""
    took = f"The restore itself took {seconds(result['restore_iteration'])}."
    if mode == "snapshot":
        return f"{took} It is one read, one PUT of the whole state and a verifying read."
    return (f"{took} At PIN cost 4 a hash takes about 1 ms, "
            f"so {args.users} account creations, two at a time after the first owner's, are round trips "
            f"({args.rtt:g} ms and more each). At the real cost the server hashes one PIN at a time whatever is in "
            "flight (the real-cost rows meet their bound), so sending more at once would win only here. "
            "Snapshot mode is one PUT.")


def memory_why(args, f):
    """Why the services' memory is what it is: the floor of three interpreters with their imports, measured here."""
    floor, peak = f["idle_floor"], f["soak"]["peak_pss_sum"]
    return (f"Missed by {size(peak - 80 * MB)}. Three processes that import what the services import and hold no "
            f"data take {size(floor)} of PSS together in this run: the interpreter, requests with urllib3, ssl and "
            f"charset_normalizer, psutil and sleepguard itself. The rest, {size(peak - floor)}, is the shop's data: "
            f"each round parses a read of {args.users} × {args.customers} (several times its bytes in memory), and "
            "Python keeps the pages for the next round. Meeting the target would take one process for the three "
            "services, or three forked from one so that they share the imported code.")


def default_seconds(name):
    """A setting's default, in seconds."""
    return float(SETTINGS[name][0])


def peak_memory(figures):
    """The highest peak RSS each service reached across the soak and the two runs at default intervals."""
    peaks = {}
    for name in SERVICE_NAMES:
        candidates = [figures["soak"][name]["peak_rss"]]
        candidates += [figures[f"memory_{mode}"][name]["peak_rss"] for mode in ("babs10", "snapshot")
                       if name in figures[f"memory_{mode}"]]
        peaks[name] = max(candidates)
    return peaks


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt", type=float, default=50, metavar="MS", help="network round trip in ms (default 50)")
    parser.add_argument("--users", type=int, default=None, help="users in the shop (default 200; 20 with --quick)")
    parser.add_argument("--customers", type=int, default=10, help="customers per user (default 10)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="soak iterations per service (default 1000; 200 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run: 20 users, 200 soak iterations, "
                                                             "the cost curve at 10 and 50 users at a low PIN cost")
    parser.add_argument("--no-handshake", action="store_true",
                        help="charge no round trip for opening a connection (only one per request)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="where to write the Markdown table "
                                                                            "(default benchmarks/RESULTS.md)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs, backups) for a look")
    args = parser.parse_args()
    args.users = args.users or (20 if args.quick else 200)
    args.iterations = args.iterations or (200 if args.quick else 1000)
    if args.users < 2 or args.customers < 1 or args.iterations < 20 or args.rtt < 0:
        parser.error("need at least 2 users, 1 customer, 20 iterations and a round trip of 0 ms or more")
    return args


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main():
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Installed even where SIGINT came in ignored (a background job), so Ctrl-C and kill always clean up.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    started, started_at = time.monotonic(), datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    load_at_start = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="sleepguard-bench-"))
    try:
        with ExitStack() as cleanup:
            if args.keep:
                print(f"temp folder kept: {workdir}")
            else:
                cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
            benchmark = Benchmark(args, workdir, cleanup)
            settings = benchmark.bench.settings(workdir, "")
            args.keep_last, args.keep_hourly, args.keep_daily = settings.keep_last, settings.keep_hourly, settings.keep_daily
            figures = benchmark.run()
    except KeyboardInterrupt:
        print("interrupted: every process stopped, temp folder removed", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    runtime = time.monotonic() - started
    load = (load_at_start, os.getloadavg()[0])
    report = build_report(args, figures, benchmark.details, runtime, started_at, load)
    print()
    print(text_table(report.rows))
    print(f"\nwhole run: {seconds(runtime)}")
    args.output.write_text(markdown(report))
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
