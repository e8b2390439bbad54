"""The data folder fills up, hits a file size cap or turns read-only during a backup: the last good backup stays
byte for byte, the cause is logged, no half-written file is left, and the running service recovers by itself.

Root ignores file modes, so the trouble is made for real: a file size limit (RLIMIT_FSIZE) set on the
running service and lifted again with psutil (works everywhere); a small tmpfs mounted over DATA_DIR
and a read-only bind mount of it, both in a private mount namespace of the service only (unshare,
nsenter), so nothing outlives the service. Where mount namespaces are refused, those two skip.
"""

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from helpers import PROJECT_DIR, command_env, seed_shop
from service_helpers import wait_until
from sleepguard.atomicfile import TEMP_NAME, write_atomic
from sleepguard.runner import read_state
from sleepguard.services import AUTO_BACKUP
from sleepguard.snapshot import parse_backup
from sleepguard.store import HISTORY_FOLDER, LATEST_NAME

SERVICE = AUTO_BACKUP.name
DEADLINE = 15
# Only warnings reach the log, so the log stays far below the size cap and the space left on the full disk.
TROUBLE_SETTINGS = {"BACKUP_INTERVAL": "0.1", "TRIGGER_POLL_INTERVAL": "0.05", "LOG_LEVEL": "WARNING"}
# The first backup is a few kB; the one the trouble hits is over 40 kB: above the cap and the space left.
FIRST_SHOP = {"users": 1, "customers": 2}
ADDED_SHOP = {"users": 2, "customers": 40, "prefix": "added"}
SIZE_CAP = 16 * 1024
SPACE_LEFT = 16 * 1024


class Service:
    """The backup service as a real process, optionally in a mount namespace of its own; `view` is its DATA_DIR."""

    def __init__(self, data_dir, url, wrapper=()):
        env = command_env(data_dir, url, **TROUBLE_SETTINGS)
        self.process = subprocess.Popen([*wrapper, sys.executable, str(PROJECT_DIR / f"{SERVICE}.py")],
                                        cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        # unshare and sh exec the service, so the PID is the service's; its mounts are seen through /proc.
        self.view = Path(f"/proc/{self.process.pid}/root") / data_dir.relative_to("/") if wrapper else data_dir

    def log(self):
        path = self.view / f"{SERVICE}.log"
        return path.read_text() if path.exists() else ""

    def customers_backed_up(self):
        """Customers in data_backup.json, or None before the first backup."""
        try:
            return parse_backup((self.view / LATEST_NAME).read_bytes()).counts()["customers"]
        except FileNotFoundError:
            return None

    def wait_for_customers(self, count, what):
        wait_until(lambda: self.customers_backed_up() == count, DEADLINE, what)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.communicate()


@pytest.fixture
def start_service():
    """Factory: start_service(data_dir, url, wrapper=...) -> Service; every one is stopped afterwards."""
    started = []

    def start(*args, **kwargs):
        started.append(Service(*args, **kwargs))
        return started[-1]

    yield start
    for service in started:
        service.stop()


def backup_files(folder):
    """data_backup.json and every history and suspect file: relative name → bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*.json"))
            if path.name == LATEST_NAME or HISTORY_FOLDER in path.relative_to(folder).parts}


def temp_files(folder):
    """Names of write_atomic's temp files anywhere below folder."""
    return sorted(path.name for path in folder.rglob("*") if TEMP_NAME.match(path.name))


def no_temp_file_left(folder):
    """A temp file of a write in progress comes and goes within ms; one a failed write left behind stays."""
    try:
        wait_until(lambda: not temp_files(folder), 5, "no temp file left in the data folder")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {temp_files(folder)}") from None


def failures(log, cause):
    """The log's lines of backups that failed to write because of cause."""
    return [line for line in log.splitlines() if "backup failed" in line and "could not write to" in line
            and cause in line]


def pause_between_writes(service):
    """SIGSTOP the service when none of its writes is half-way.

    A write the trouble cuts short cannot always remove its temp file: on a folder turned read-only the
    unlink fails too, and the temp file stays (hidden, ignored by every reader) until the store clears
    stale ones. That is expected; here the trouble begins between two writes, so none may stay.
    """
    running = psutil.Process(service.process.pid)

    def paused_between_writes():
        service.process.send_signal(signal.SIGSTOP)
        wait_until(lambda: running.status() == psutil.STATUS_STOPPED, DEADLINE, "the service to pause")
        if not temp_files(service.view):
            return True
        service.process.send_signal(signal.SIGCONT)
        return False

    wait_until(paused_between_writes, DEADLINE, "a pause of the service between two writes")


def ride_out_trouble(service, url, start_trouble, end_trouble, cause):
    """First backup, trouble, more data: the backup fails with cause and touches nothing; trouble ends: it recovers."""
    seed_shop(url, **FIRST_SHOP)
    first_count = FIRST_SHOP["users"] * FIRST_SHOP["customers"]
    service.wait_for_customers(first_count, "the first good backup")
    # Paused meanwhile, the service reads the added data whole or not at all: a partial read could be small
    # enough to fit.
    pause_between_writes(service)
    start_trouble()
    seed_shop(url, **ADDED_SHOP)
    before = backup_files(service.view)
    service.process.send_signal(signal.SIGCONT)
    # Two failed tries: the service keeps going (and failing cleanly) while the trouble lasts.
    wait_until(lambda: len(failures(service.log(), cause)) >= 2, DEADLINE, f"two backups failed with {cause!r}")
    assert all("no file was changed" in line for line in failures(service.log(), cause))
    assert backup_files(service.view) == before, "a file of the last good backup changed"
    assert service.customers_backed_up() == first_count
    no_temp_file_left(service.view)
    end_trouble()
    service.wait_for_customers(first_count + ADDED_SHOP["users"] * ADDED_SHOP["customers"],
                               "a good backup once the trouble is over")
    assert service.process.poll() is None, "the service had to be restarted"
    no_temp_file_left(service.view)


def test_a_file_size_cap_fails_the_backup_cleanly_and_lifting_it_lets_the_running_service_recover(
        start_service, demo_backend, data_dir):
    service = start_service(data_dir, demo_backend.url)
    running = psutil.Process(service.process.pid)
    _soft, hard = running.rlimit(psutil.RLIMIT_FSIZE)

    def set_cap(limit):
        # psutil sets a running process's limit (prlimit); below the hard limit no privilege is needed.
        running.rlimit(psutil.RLIMIT_FSIZE, (limit, hard))

    ride_out_trouble(service, demo_backend.url, lambda: set_cap(SIZE_CAP), lambda: set_cap(hard),
                     "File too large")
    assert read_state(data_dir, SERVICE).pid == service.process.pid


def test_manual_backup_on_a_capped_disk_says_why_in_one_line_and_changes_nothing(demo_backend, data_dir):
    env = command_env(data_dir, demo_backend.url)
    seed_shop(demo_backend.url, **FIRST_SHOP)
    command = [sys.executable, str(PROJECT_DIR / "manual_backup.py")]
    assert subprocess.run(command, cwd=PROJECT_DIR, env=env, capture_output=True, timeout=DEADLINE).returncode == 0
    before = backup_files(data_dir)
    seed_shop(demo_backend.url, **ADDED_SHOP)
    result = subprocess.run(command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=DEADLINE,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (SIZE_CAP, SIZE_CAP)))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stdout.startswith("backup failed") and result.stdout.count("\n") == 1, result.stdout
    assert f"could not write to {data_dir}: File too large; no file was changed" in result.stdout
    assert backup_files(data_dir) == before and temp_files(data_dir) == []


def test_a_write_that_fails_keeps_the_old_file_and_removes_its_temp_file(tmp_path):
    path = tmp_path / "kept.json"
    write_atomic(path, b"the old content\n")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # Python ignores SIGXFSZ, so a write past the cap fails with EFBIG instead of killing the test run.
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
    try:
        with pytest.raises(OSError, match="File too large"):
            write_atomic(path, b"x" * 5000)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert path.read_bytes() == b"the old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.json"]


# --- real mounts, in a private mount namespace of the service --------------------------------------------------

NAMESPACE = ("unshare", "--mount", "--propagation", "private")


@pytest.fixture(scope="module")
def mount_namespaces(tmp_path_factory):
    """Skip unless this machine lets us mount a tmpfs and a read-only bind mount in a private mount namespace."""
    missing = [tool for tool in ("unshare", "nsenter", "mount") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (util-linux)")
    folder = tmp_path_factory.mktemp("probe")
    probe = subprocess.run([*NAMESPACE, "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$0" && '
                            'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0"', str(folder)],
                           capture_output=True, text=True, timeout=DEADLINE)
    if probe.returncode != 0:
        pytest.skip(f"mount namespaces are refused here (needs root or CAP_SYS_ADMIN): {probe.stderr.strip()}")


def in_namespace(pid, *command):
    """Run a command in the service's mount namespace; fail with its message if it fails."""
    result = subprocess.run(["nsenter", "--target", str(pid), "--mount", *command], capture_output=True, text=True,
                            timeout=DEADLINE)
    assert result.returncode == 0, result.stderr


def test_a_full_disk_fails_the_backup_cleanly_and_freeing_space_lets_the_running_service_recover(
        mount_namespaces, start_service, demo_backend, data_dir):
    on_tmpfs = [*NAMESPACE, "sh", "-c", f'mount -t tmpfs -o size=1m,mode=0700 tmpfs "{data_dir}" && exec "$0" "$@"']
    service = start_service(data_dir, demo_backend.url, wrapper=on_tmpfs)
    filler = service.view / "filler"

    def fill_up():
        space = os.statvfs(service.view)
        filler.write_bytes(b"\0" * (space.f_bavail * space.f_frsize - SPACE_LEFT))

    ride_out_trouble(service, demo_backend.url, fill_up, filler.unlink, "No space left on device")


def test_a_read_only_folder_fails_the_backup_cleanly_and_the_running_service_recovers_when_writable(
        mount_namespaces, start_service, demo_backend, data_dir):
    service = start_service(data_dir, demo_backend.url, wrapper=[*NAMESPACE])
    pid, folder = service.process.pid, str(data_dir)

    def read_only():
        # The log stays writable: the service opened it before, through the mount underneath.
        in_namespace(pid, "mount", "--bind", folder, folder)
        in_namespace(pid, "mount", "-o", "remount,bind,ro", folder)

    ride_out_trouble(service, demo_backend.url, read_only, lambda: in_namespace(pid, "umount", folder),
                     "Read-only file system")
