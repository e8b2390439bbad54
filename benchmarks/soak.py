"""The soak: the three services with tiny intervals on unchanged data, for their memory after many iterations and what they write.

It runs in the background at the lowest CPU priority, on its own demo back end, while the
naive baseline (which only waits on the network) is timed. Each service is measured and
stopped once its state file shows the target number of iterations.
"""

import subprocess
import sys
import threading
import time

import psutil

from rig import (AUTO_BACKUP, AUTO_RESTORE, KEEP_ALIVE, PROJECT_DIR, SERVICE_NAMES, BenchError, Demo, Services, memory,
                 pss, renice)
from sleepguard.settings import SETTINGS
from sleepguard.services import SERVICES, state_file_path
from sleepguard.store import HISTORY_FOLDER, LATEST_NAME

LOG_NAMES = {service.name: service.log_name for service in SERVICES}
# Iterations a day with the default intervals: a ping every 120 s, a trigger poll every 15 s, a wipe check every 60 s.
DEFAULT_ITERATIONS_PER_DAY = {KEEP_ALIVE: 86400 / 120, AUTO_BACKUP: 86400 / 15, AUTO_RESTORE: 86400 / 60}
DEFAULT_BACKUPS_PER_DAY = 86400 / 120
SOAK_INTERVALS = {"keep_alive_interval": 0.05, "trigger_poll_interval": 0.02, "backup_interval": 0.5,
                  "restore_check_interval": 0.02}
# The soak's state files are rewritten at least every second (not every STATE_WRITE_INTERVAL), so their iterations can be watched.
SOAK_STATE_WRITE_INTERVAL = 1.0
DEFAULT_STATE_WRITE_INTERVAL = float(SETTINGS["STATE_WRITE_INTERVAL"][0])
POLL_SECONDS = 0.25
WIPE_DEADLINE = 60
BACKUP_LINE = "backup unchanged"
IDLE_LINE = "nothing saved since the last backup"


def backup_data_files(data_dir):
    """{path: (inode, size)} of the backup data: data_backup.json and everything under the history folder."""
    files = {}
    latest = data_dir / LATEST_NAME
    candidates = [latest] if latest.exists() else []
    history = data_dir / HISTORY_FOLDER
    if history.is_dir():
        candidates += [path for path in history.rglob("*") if path.is_file()]
    for path in candidates:
        stat = path.stat()
        files[path] = (stat.st_ino, stat.st_size)
    return files


def log_bytes(data_dir, service):
    """Bytes in the service's log and its rotated copies."""
    name = LOG_NAMES[service]
    return sum(path.stat().st_size for path in data_dir.glob(name + "*") if path.is_file())


def line_lengths(data_dir, service, marker):
    """Mean length in bytes of the log lines holding marker (None when there is none)."""
    path = data_dir / LOG_NAMES[service]
    lengths = [len(line.encode()) + 1 for line in path.read_text(errors="replace").splitlines() if marker in line]
    return sum(lengths) / len(lengths) if lengths else None


class Soak:
    """Start, watch in a thread, and gather: memory per service, bytes written per iteration, backup data written."""

    def __init__(self, bench, state, target_iterations, cleanup, with_voice=True):
        self.bench = bench
        self.with_voice = with_voice
        self.source_state = state
        self.target = target_iterations
        self.warmup = max(20, target_iterations // 10)
        self.cleanup = cleanup
        self.results = {}
        self.error = None
        self.peak_pss_sum = 0  # the highest sum of the three services' PSS seen in any sample
        self.wipe = None
        self._thread = threading.Thread(target=self._watch, name="soak-watch", daemon=True)
        self._quit = threading.Event()

    def voice_and_offsite(self):
        """ALERT_URLS and HEARTBEAT_URL at a local receiver, off-site copies to moto's S3 server: all configured."""
        from helpers import free_port
        from offsite_helpers import MOTO_KEY_ID, MOTO_SECRET, MotoServer, new_identity
        port = free_port()
        receiver = subprocess.Popen([sys.executable, str(PROJECT_DIR / "tests" / "http_receiver.py"), "--port",
                                     str(port), "--record", str(self.bench.workdir / "received.jsonl")],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    text=True)
        self.cleanup.callback(receiver.kill)
        if receiver.stdout.readline().strip() != "ready":
            raise BenchError("the alert and heartbeat receiver did not start")
        receiver_url = f"http://127.0.0.1:{port}"
        moto = MotoServer()
        self.cleanup.callback(moto.stop)
        moto.client().make_bucket("soak-copies")
        _identity, recipient = new_identity(self.bench.workdir)
        host_port = receiver_url.removeprefix("http://")
        return {"alert_urls": f"json://{host_port}/", "heartbeat_url": f"{receiver_url}/heartbeat",
                "offsite_url": "s3://soak-copies/sleepguard", "offsite_endpoint_url": moto.url,
                "offsite_recipient": recipient, "aws_access_key_id": MOTO_KEY_ID, "aws_secret_access_key": MOTO_SECRET}

    def start(self):
        # The soak without alerts, heartbeat and off-site runs beside the configured one: its own demo and folder.
        name = "soak" if self.with_voice else "soak-plain"
        self.demo = Demo(self.bench.workdir, f"{name}-demo")
        self.cleanup.callback(self.demo.stop)
        renice(self.demo.process.pid)
        self.demo.put_state(self.source_state)
        self.data_dir = self.bench.data_dir(name)
        self.configured = self.voice_and_offsite() if self.with_voice else {}
        self.services = Services(self.bench, self.data_dir, self.demo.url, nice=True, backend_mode="snapshot",
                                 api_token=self.demo.token, state_write_interval=SOAK_STATE_WRITE_INTERVAL,
                                 **SOAK_INTERVALS, **self.configured)
        self.cleanup.callback(self.services.stop_all)
        for name in SERVICE_NAMES:
            self.services.start(name)
        self.started = time.monotonic()
        self._thread.start()

    def _sample(self, name):
        process = self.services.processes[name]
        state = self.services.state(name)
        return {"iterations": state.get("iterations", 0), "write_bytes": _write_bytes(process.pid),
                "log_bytes": log_bytes(self.data_dir, name), **memory(process.pid),
                "figures": state.get("last_figures", {}), "at": time.monotonic()}

    def _watch(self):
        try:
            ready = lambda: all(self.services.iterations(n) >= self.warmup for n in SERVICE_NAMES) \
                and self.services.figures(AUTO_BACKUP).get("good_count", 0) >= 1
            while not ready():
                self._pause()
            self._wipe_and_restore()
            base = {name: self._sample(name) for name in SERVICE_NAMES}
            base_files = backup_data_files(self.data_dir)
            # A fast service may be past the target already: it still runs the measured stretch after the warm-up.
            goal = {name: max(self.target, base[name]["iterations"] + self.target - self.warmup) for name in SERVICE_NAMES}
            waiting = set(SERVICE_NAMES)
            while waiting:
                for name in sorted(waiting):
                    if self.services.iterations(name) >= goal[name]:
                        end = self._sample(name)
                        if name == AUTO_BACKUP:
                            self.results["backup_data"] = self._backup_data(base_files, base[name], end)
                        self.services.stop(name)
                        self.results[name] = self._service(name, base[name], end)
                        waiting.discard(name)
                self._pause()
        except Exception as exc:  # reported by finish(), in the main thread
            self.error = exc
        finally:
            self.seconds = time.monotonic() - self.started
            self.services.stop_all()
            self.demo.stop()

    def _wipe_and_restore(self):
        """Wipe the soak's back end once, in the warm-up, and wait for the restore service to put it back."""
        restores = self.services.figures(AUTO_RESTORE).get("restores", 0)
        started = time.monotonic()
        self.demo.sleep_now()
        while self.services.figures(AUTO_RESTORE).get("restores", 0) <= restores:
            if time.monotonic() - started > WIPE_DEADLINE:
                raise BenchError("the soak's wipe was not restored in time")
            self._pause()
        self.wipe = {"restored_after": time.monotonic() - started,
                     "summary": self.services.state(AUTO_RESTORE).get("last_summary")}

    def _pause(self):
        total = 0
        for process in list(self.services.processes.values()):
            value = pss(process.pid) if process.poll() is None else None
            total += value or 0
        self.peak_pss_sum = max(self.peak_pss_sum, total if len(self.services.processes) == 3 else 0)
        if self._quit.wait(POLL_SECONDS):
            raise BenchError("the soak was stopped before it was done")

    def _service(self, name, base, end):
        iterations = end["iterations"] - base["iterations"]
        state_size = state_file_path(self.data_dir, name).stat().st_size
        written = None if None in (base["write_bytes"], end["write_bytes"]) else end["write_bytes"] - base["write_bytes"]
        return {"iterations": end["iterations"], "measured_iterations": iterations,
                "peak_rss": end["peak_rss"], "rss": end["rss"], "pss": end["pss"], "uss": end["uss"], "rss_at_warmup": base["rss"],
                "warmup_iterations": base["iterations"],
                "write_bytes_per_iteration": None if written is None else written / iterations,
                "log_bytes_per_iteration": (end["log_bytes"] - base["log_bytes"]) / iterations,
                "log_bytes": end["log_bytes"] - base["log_bytes"], "seconds": end["at"] - base["at"],
                "state_file_bytes": state_size}

    def _backup_data(self, base_files, base, end):
        """What the backup service wrote as backup data while nothing changed, and how many backups that was."""
        now = backup_data_files(self.data_dir)
        written = {path: size for path, (inode, size) in now.items() if base_files.get(path, (None,))[0] != inode}
        before, after = base["figures"], end["figures"]
        return {"bytes": sum(written.values()), "files": len(written),
                "backups": after.get("backups_taken", 0) - before.get("backups_taken", 0),
                "unchanged": after.get("unchanged_count", 0) - before.get("unchanged_count", 0),
                "good": after.get("good_count", 0) - before.get("good_count", 0),
                "backup_line": line_lengths(self.data_dir, AUTO_BACKUP, BACKUP_LINE),
                "idle_line": line_lengths(self.data_dir, AUTO_BACKUP, IDLE_LINE),
                "latest_size": (self.data_dir / LATEST_NAME).stat().st_size}

    def finish(self, timeout):
        """Wait for the soak to end (BenchError past the deadline) and return its results."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._quit.set()
            self._thread.join(30)
            raise BenchError(f"the soak did not reach {self.target} iterations within {timeout:g} s")
        if self.error is not None:
            raise BenchError(f"the soak failed: {self.error}") from self.error
        return {**self.results, "peak_pss_sum": self.peak_pss_sum, "wipe": self.wipe}

    def stop(self):
        """Ask the watch thread to end early (Ctrl-C); the services stop in its finally."""
        self._quit.set()


def _write_bytes(pid):
    """Bytes the process caused to be written to storage (Linux); None where the system does not count them."""
    try:
        return psutil.Process(pid).io_counters().write_bytes
    except (AttributeError, psutil.Error):
        return None


def disk_per_day(results):
    """Bytes a day at the default intervals: backup data, and the state files and logs of the three services.

    Unchanged data rewrites each state file and logs its INFO line once per STATE_WRITE_INTERVAL (3600 s by default);
    the soak, at a 1 s clock, shows what one such period writes: its log bytes per second of soak.
    """
    backup = results["backup_data"]
    per_backup = backup["bytes"] / backup["backups"] if backup["backups"] else None
    periods = 86400 / DEFAULT_STATE_WRITE_INTERVAL
    state_and_logs = 0.0
    for name in SERVICE_NAMES:
        service = results[name]
        rounds = min(DEFAULT_ITERATIONS_PER_DAY[name], periods)
        log_per_period = service["log_bytes"] / max(service["seconds"] / SOAK_STATE_WRITE_INTERVAL, 1)
        state_and_logs += rounds * (service["state_file_bytes"] + log_per_period)
    storage = None
    if all(results[name]["write_bytes_per_iteration"] is not None for name in SERVICE_NAMES):
        # What the soak wrote per second at its 1 s clock is what one STATE_WRITE_INTERVAL period writes at the defaults.
        storage = sum(results[name]["write_bytes_per_iteration"] * results[name]["measured_iterations"]
                      / results[name]["seconds"] * SOAK_STATE_WRITE_INTERVAL * periods for name in SERVICE_NAMES)
    return {"backup_data": None if per_backup is None else per_backup * DEFAULT_BACKUPS_PER_DAY,
            "state_and_logs": state_and_logs, "storage_writes": storage}
