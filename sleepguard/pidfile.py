"""PID files for the services, trusted only when the process they name is verified alive and ours.

A PID file holds two lines: the PID and the process's psutil create time. The running
service keeps an exclusive ``flock`` on it for its whole life, so a second copy refuses to
start, and the file is rewritten in place (never renamed over) because the lock lives on
the inode. Readers never trust the PID alone: a process counts as the service only when it
is alive, started at the recorded time and runs the service's script.
"""

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from .exceptions import ServiceAlreadyRunning
from .flocks import try_flock

log = logging.getLogger(__name__)

# psutil derives create times from the boot time, which /proc reports in whole seconds
# and which can jitter by one second; a reused PID would differ by far more.
CREATE_TIME_TOLERANCE = 1.5
# How long a starting copy waits for a lock held by a process that is not (yet) verified:
# the holder may be a stale-file cleaner or a service that has not written its PID yet.
LOCK_WAIT_SECONDS = 1.0
LOCK_RETRY_SECONDS = 0.05
MAX_PID_FILE_BYTES = 200


@dataclass(frozen=True)
class PidInfo:
    """What a PID file says; pid is None when the file is unreadable or garbage."""

    pid: int | None
    create_time: float | None
    problem: str = ""


@dataclass(frozen=True)
class ServiceProcess:
    """Verified state of one service: 'running', 'stopped' or 'stale', with the reason."""

    service: str
    state: str
    pid: int | None
    started_at: float | None
    reason: str


def pid_file_path(data_dir: Path, service: str) -> Path:
    """Return where the PID file of a service lives."""
    return Path(data_dir) / f"{service}.pid"


def _parse_pid_text(text: str) -> PidInfo:
    """Parse '<pid>\\n<create_time>\\n'; garbage gives a PidInfo with pid None and a problem."""
    lines = text.split()
    if not lines:
        return PidInfo(None, None, "PID file is empty")
    try:
        pid = int(lines[0])
        create_time = float(lines[1]) if len(lines) > 1 else None
    except ValueError:
        return PidInfo(None, None, "PID file is garbage")
    if pid <= 0:
        return PidInfo(None, None, "PID file is garbage")
    if create_time is None:
        return PidInfo(pid, None, f"PID file for PID {pid} has no start time")
    return PidInfo(pid, create_time)


def read_pid_file(path: Path) -> PidInfo | None:
    """Read a PID file; None when it does not exist, a PidInfo with a problem when unusable."""
    try:
        with open(path, "rb") as pid_file:
            raw = pid_file.read(MAX_PID_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return PidInfo(None, None, f"PID file is unreadable: {exc.strerror}")
    if len(raw) > MAX_PID_FILE_BYTES:
        return PidInfo(None, None, "PID file is garbage")
    return _parse_pid_text(raw.decode("ascii", errors="replace"))


def _runs_script(cmdline: list[str], script: str) -> bool:
    """Tell whether a command line runs the given script file."""
    return any(Path(part).name == script for arg in cmdline for part in arg.split())


def _verify(service: str, info: PidInfo) -> tuple[psutil.Process | None, str]:
    """Return (process, '') when info names the live service, else (None, why not)."""
    if info.pid is None:
        return None, info.problem
    pid = info.pid
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None, f"PID {pid} is not running (zombie)"
        if not _runs_script(process.cmdline(), f"{service}.py"):
            return None, f"PID {pid} is another program ({process.name()})"
        if info.create_time is None:
            return None, info.problem
        if abs(process.create_time() - info.create_time) >= CREATE_TIME_TOLERANCE:
            return None, f"PID {pid} was reused: start time differs"
    except psutil.NoSuchProcess:
        return None, f"PID {pid} is not running"
    except psutil.AccessDenied:
        return None, f"PID {pid} cannot be inspected (access denied)"
    return process, ""


def _check(data_dir: Path, service: str) -> tuple[ServiceProcess, psutil.Process | None]:
    """Check a service and also hand back its verified psutil.Process when running."""
    info = read_pid_file(pid_file_path(data_dir, service))
    if info is None:
        return ServiceProcess(service, "stopped", None, None, "no PID file"), None
    process, why_not = _verify(service, info)
    if process is None:
        return ServiceProcess(service, "stale", info.pid, info.create_time, why_not), None
    return ServiceProcess(service, "running", info.pid, info.create_time, "running"), process


def check_service(data_dir: Path, service: str) -> ServiceProcess:
    """Tell whether a service runs, judged by its PID file verified against the live process."""
    return _check(data_dir, service)[0]


def signal_service(data_dir: Path, service: str, signum: int) -> bool:
    """Send a signal to the service only if its PID file names the verified live service."""
    status, process = _check(data_dir, service)
    if process is None:
        log.info("not signalling %s: %s", service, status.reason)
        return False
    try:
        # psutil re-checks PID and create time right before sending, closing the reuse gap.
        process.send_signal(signum)
    except psutil.NoSuchProcess:
        log.info("not signalling %s: PID %s exited meanwhile", service, status.pid)
        return False
    return True


def _same_file(fd: int, path: Path) -> bool:
    """Tell whether the open descriptor is still the file at path (not unlinked or replaced)."""
    try:
        on_disk = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (opened.st_dev, opened.st_ino)


def remove_stale_pid_file(data_dir: Path, service: str) -> bool:
    """Remove a PID file naming a dead or foreign process; never one a live process holds."""
    path = pid_file_path(data_dir, service)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        if not try_flock(fd):
            return False
        status = check_service(data_dir, service)
        if status.state != "stale" or not _same_file(fd, path):
            return False
        try:
            os.unlink(path)
        except OSError as exc:
            log.warning("could not remove stale PID file %s: %s", path, exc.strerror)
            return False
        log.info("removed stale PID file of %s: %s", service, status.reason)
        return True
    finally:
        os.close(fd)


class PidFileLock:
    """The PID file held by the running service; release() removes it if it still names us."""

    def __init__(self, path: Path, fd: int, pid: int, create_time: float):
        self.path = path
        self.pid = pid
        self.create_time = create_time
        self._fd: int | None = fd

    def release(self) -> None:
        """Remove the PID file if it still names this process, then close it to drop the lock."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            info = read_pid_file(self.path)
            names_us = (
                info is not None
                and info.pid == os.getpid() == self.pid
                and info.create_time is not None
                and abs(info.create_time - self.create_time) < CREATE_TIME_TOLERANCE
            )
            if names_us and _same_file(fd, self.path):
                os.unlink(self.path)
        finally:
            # Closing, not LOCK_UN: a forked child sharing this descriptor must not unlock the parent.
            os.close(fd)

    def __enter__(self) -> "PidFileLock":
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def _open_locked(path: Path, service: str) -> int:
    """Open the PID file and hold its lock, or raise ServiceAlreadyRunning."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        if try_flock(fd):
            # The previous holder may have unlinked the file between our open and lock.
            if _same_file(fd, path):
                return fd
            os.close(fd)
            continue
        os.close(fd)
        holder = read_pid_file(path)
        holder_pid = holder.pid if holder is not None else None
        verified = holder is not None and _verify(service, holder)[0] is not None
        if verified or time.monotonic() >= deadline:
            shown = holder_pid if holder_pid is not None else "unknown"
            raise ServiceAlreadyRunning(f"{service} is already running (PID {shown})")
        time.sleep(LOCK_RETRY_SECONDS)


def acquire_pid_file(data_dir: Path, service: str) -> PidFileLock:
    """Lock and write the service's PID file, raising ServiceAlreadyRunning if a copy runs."""
    path = pid_file_path(data_dir, service)
    fd = _open_locked(path, service)
    try:
        os.fchmod(fd, 0o600)
        pid = os.getpid()
        create_time = psutil.Process(pid).create_time()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{pid}\n{create_time!r}\n".encode("ascii"), 0)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    log.debug("PID file %s written for PID %d", path, pid)
    return PidFileLock(path, fd, pid, create_time)
