#!/usr/bin/env python3
"""Measure sleepguard against the naive sequential scripts it replaces, side by side, on the demo back end behind a slow network.

usage: python3 benchmarks/run.py [--quick] [--rtt MS] [--users N] [--customers N] [--iterations N]
                                [--no-handshake] [--output PATH] [--keep]

It starts the demo back end behind a latency proxy, seeds a shop, times backup, restore and
recovery both ways, runs the three services for memory and disk figures, prints the table and
writes it to benchmarks/RESULTS.md. Everything lives in a temp folder, removed at the end;
every process it started is stopped, Ctrl-C included.
"""

import argparse
import logging
import os
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
sys.path[1:1] = [str(PROJECT_DIR), str(PROJECT_DIR / "tests")]

import requests  # noqa: E402

from naive import KEEP_FILES, SCHEDULE_SECONDS, naive_backup, naive_restore  # noqa: E402
from report import Report, Row, markdown, seconds, size, text_table, times  # noqa: E402
from rig import (AUTO_BACKUP, AUTO_RESTORE, KEEP_ALIVE, SERVICE_NAMES, Bench, BenchError, Demo,  # noqa: E402
                 LatencyProxy, Services, post_trigger, read_json, seed, wait_for)
from soak import SOAK_INTERVALS, Soak, disk_per_day  # noqa: E402
from sleepguard.apply import restore_now  # noqa: E402
from sleepguard.backup import take_backup  # noqa: E402
from sleepguard.client import BackendClient  # noqa: E402
from sleepguard.runner import state_file_path  # noqa: E402
from sleepguard.settings import SETTINGS  # noqa: E402
from sleepguard.store import LATEST_NAME, BackupStore  # noqa: E402

RESULTS_PATH = BENCH_DIR / "RESULTS.md"


def one_backup(settings):
    """One backup as manual_backup.py takes it: a client of its own, opened and closed."""
    with BackendClient(settings) as client:
        return take_backup(settings, client)
SLEEPGUARD_BACKUP_RUNS = 3
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
        self.api_restore()
        self.snapshot_restore()
        soak = Soak(self.bench, self.demo.state(), self.args.iterations, self.cleanup)
        soak.start()
        self.cleanup.callback(soak.stop)
        self.say(f"soak started in the background (niced): 3 services, snapshot mode, until {self.args.iterations} "
                 "iterations each")
        self.naive_timings()
        self.say("waiting for the soak to finish ...")
        self.figures["soak"] = soak.finish(SOAK_DEADLINE)
        self.figures["soak_seconds"] = soak.seconds
        self.say(f"soak done in {soak.seconds:.0f} s")
        self.services_session("babs10")
        self.services_session("snapshot")
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

    def timed(self, call):
        """(answer, seconds, new connections) of one call through the proxy."""
        connections, started = self.proxy.connections_opened, time.monotonic()
        answer = call()
        return answer, time.monotonic() - started, self.proxy.connections_opened - connections

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
        self.detail("sleepguard backup runs (each into a fresh DATA_DIR, default settings, BACKUP_WORKERS 8): "
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

    def api_restore(self):
        backup = BackupStore(self.api_settings).latest_good_backup()
        self.demo.sleep_now()
        report, took, connections = self.timed(lambda: restore_with_own_client(self.api_settings, backup))
        if not report.complete:
            raise BenchError(f"sleepguard API-mode restore is not complete: {report.missing[:5]}")
        self.check_data_back("sleepguard API-mode restore")
        self.figures["restore_api_sleepguard"] = took
        result = report.result
        self.detail(f"sleepguard API-mode restore: {result.users_created} users and {result.customers_created} "
                    f"customers created, then verified by a full read; {connections} new connections")
        self.say(f"restore after a wipe, API mode: sleepguard {seconds(took)}")

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
        self.demo.sleep_now()
        (created, failed), took, connections = self.timed(lambda: naive_restore(self.proxy.url, path, self.pins))
        if failed:
            raise BenchError(f"the naive restore failed on {failed} records")
        self.check_data_back("naive restore")
        self.figures["restore_naive"] = took
        self.detail(f"naive restore: {created} POSTs, {connections} new connections, "
                    f"{took / created * 1000:.1f} ms per request (network model {self.model_request_seconds() * 1000:.0f} ms "
                    "+ the server hashing each user's PIN); timed while the soak ran niced in the background")
        self.say(f"restore after a wipe: naive {seconds(took)}")

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
        restored_at = state["last_figures"]["last_restore_at"]
        services.wait_state(AUTO_BACKUP, lambda s: (s["last_figures"].get("last_good_backup_at") or "") > restored_at,
                            150, "a fresh backup of the restored data")
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
                    seconds(f["backup_naive"]), times(backup_ratio), "≥ 10× faster", backup_ratio >= 10))
    restore_ratio = f["restore_naive"] / f["restore_api_sleepguard"]
    rows.append(Row("restore after a wipe, API mode", seconds(f["restore_api_sleepguard"]), seconds(f["restore_naive"]),
                    times(restore_ratio), "≥ 5× faster", restore_ratio >= 5))
    snapshot = f["restore_snapshot_sleepguard"]
    rows.append(Row("restore after a wipe, snapshot mode", seconds(snapshot), seconds(f["restore_naive"]),
                    times(f["restore_naive"] / snapshot), "< 1 s", snapshot < 1))
    naive_recovery = SCHEDULE_SECONDS / 2 + f["restore_naive"]
    poll = default_seconds("TRIGGER_POLL_INTERVAL")
    for mode, label in (("babs10", "API mode"), ("snapshot", "snapshot mode")):
        worst = f[f"recovery_default_{mode}"]["from_up"]
        average = worst - poll / 2
        rows.append(Row(f"recovery after a sleep, default intervals, {label}",
                        f"{seconds(worst)} worst, {seconds(average)} avg", f"{seconds(naive_recovery)} avg (computed)",
                        times(naive_recovery / average), "< 20 s", worst < 20))
    for mode, label in (("babs10", "API mode"), ("snapshot", "snapshot mode")):
        measured = f[f"recovery_wake_{mode}"]["from_health"]
        rows.append(Row(f"recovery with the keep-alive wake, {label}", seconds(measured),
                        f"{seconds(naive_recovery)} avg (computed)",
                        times(naive_recovery / measured) if measured else "—", "< 3 s",
                        measured is not None and measured < 3))
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
    rows.append(Row("disk written per day: state files and logs", size(disk["state_and_logs"]), "not measured", "—"))
    naive_depth_minutes = KEEP_FILES * SCHEDULE_SECONDS / 60
    rows.append(Row("history depth kept", f"{args.keep_daily} days", f"{naive_depth_minutes:.0f} min",
                    times(args.keep_daily * 24 * 60 / naive_depth_minutes, "deeper")))
    total_peak = sum(peak_memory(f).values())
    rows.append(Row(f"peak RSS, three services added up (≥ {args.iterations} iterations each)", size(total_peak),
                    "—", "—", "< 100 MB", total_peak < 100 * MB))
    together = shared_once(f["soak"])
    if together is not None:
        rows.append(Row("memory of the three, shared pages once (end of soak)", size(together), "—", "—"))
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
        "sleepguard one-shot figures call the library in-process with the default settings (8 workers, one pooled "
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
        "logs: each service rewrites its state file every iteration and logs one line; their measured sizes times "
        "the iterations a day at the default intervals (keep-alive 720, auto-backup 5,760 trigger polls of which "
        "720 back up, auto-restore 1,440). Logs are capped on disk by rotation (LOG_MAX_BYTES × (LOG_BACKUP_COUNT "
        "+ 1) per service); the state files are a few kB each. naive: one full file every 2 minutes.",
        f"History depth: sleepguard keeps every change among the newest KEEP_LAST={args.keep_last}, one per hour "
        f"for KEEP_HOURLY={args.keep_hourly} h and one per day for KEEP_DAILY={args.keep_daily} days (defaults); "
        f"and a wiped read never counts towards it. naive: keep-last-{KEEP_FILES} files every 2 minutes.",
        "Peak RSS: VmHWM (the high-water mark of resident memory) of each service process, the highest of the soak "
        "and of the two runs with the services at default intervals (API mode, which includes two restores, and "
        "snapshot mode); the three peaks are added, though they need not happen at once. Each is a whole Python "
        "process: the interpreter with requests, urllib3 and psutil imported is about 34 MB of RSS before any data, "
        "some 12 MB of it pages shared with every other Python process (the interpreter, libssl). The row "
        "'shared pages once' adds each service's unique memory (USS) and the largest shared part once: what the "
        "three occupy together.",
    ]


def raw_figures(f, details):
    """The figures behind the table, for RESULTS.md."""
    lines = list(details)
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
                  raw_figures(figures, details))


def default_seconds(name):
    """A setting's default, in seconds."""
    return float(SETTINGS[name][0])


def shared_once(soak):
    """What the three services hold together at the end of the soak: each one's own memory, the shared pages once."""
    if any(soak[name]["uss"] is None for name in SERVICE_NAMES):
        return None
    return (sum(soak[name]["uss"] for name in SERVICE_NAMES)
            + max(soak[name]["rss"] - soak[name]["uss"] for name in SERVICE_NAMES))


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
    parser.add_argument("--users", type=int, default=None, help="users in the shop (default 200; 50 with --quick)")
    parser.add_argument("--customers", type=int, default=10, help="customers per user (default 10)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="soak iterations per service (default 1000; 200 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run: 50 users, 200 soak iterations")
    parser.add_argument("--no-handshake", action="store_true",
                        help="charge no round trip for opening a connection (only one per request)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="where to write the Markdown table "
                                                                            "(default benchmarks/RESULTS.md)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs, backups) for a look")
    args = parser.parse_args()
    args.users = args.users or (50 if args.quick else 200)
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
