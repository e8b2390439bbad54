"""Is that process alive and ours: PID files, starting, stopping and the signals a loop waits for.

A PID file holds two lines, the PID and the process's psutil create time, and is held under an
exclusive ``flock`` for the process's whole life: a service takes it itself (acquire_pid_file),
the demo back end inherits it from the launcher (spawn_holding_pid_file). A PID file is
trusted only when its process is alive, started at the recorded time, runs that program, AND
the file is held: the lock lives on this very inode, so a copy of a running DATA_DIR (cp -a,
rsync, a restore from a backup) holds PID files that name the original's live processes but
that nobody holds; they are stale, and stopping the copy never touches the original. The
kernel drops the lock at any death, kill -9 included. Checkers and stale-file removers take
only a shared lock, which fails while an owner holds its exclusive one and never shuts each
other out. A PID file is removed by the process that wrote it, or as a verified-stale file.
"""

import logging
import os
import select
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import psutil

from .atomicfile import PRIVATE_FILE_MODE
from .exceptions import ServiceAlreadyRunning
from .flocks import try_flock
from .services import DEMO, demo_url_path, pid_file_path, program_named
from .settings import PROJECT_DIR

log = logging.getLogger(__name__)

# psutil derives create times from the boot time, which /proc reports in whole seconds
# and which can jitter by one second; a reused PID would differ by far more.
CREATE_TIME_TOLERANCE = 1.5
# How long a starting copy waits for a lock held by a process that is not (yet) verified:
# the holder may be a stale-file cleaner or a service that has not written its PID yet.
LOCK_WAIT_SECONDS = 1.0
LOCK_RETRY_SECONDS = 0.05
MAX_PID_FILE_BYTES = 200
# A stop: SIGTERM, this long to exit, then SIGKILL and this long more.
STOP_DEADLINE = 10.0
KILL_DEADLINE = 5.0
POLL_SECONDS = 0.05

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
WAKE_SIGNAL = signal.SIGUSR1


@dataclass(frozen=True)
class PidInfo:
    """What a PID file says; pid is None when the file is unreadable or garbage."""

    pid: int | None
    create_time: float | None
    problem: str = ""


@dataclass(frozen=True)
class ServiceProcess:
    """Verified state of one program: 'running', 'stopped' or 'stale', with the reason."""

    service: str
    state: str
    pid: int | None
    started_at: float | None
    reason: str


def wait_until(done, seconds: float, poll: float = POLL_SECONDS) -> bool:
    """Poll done() until it is true or seconds have passed; return its last answer."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() >= deadline:
            return done()
        time.sleep(poll)
    return True


# --- the PID file: one writer, one reader ---

def write_pid(fd: int, pid: int, create_time: float) -> None:
    """Write '<pid>\\n<create_time>\\n' over the open PID file, in place: its lock lives on the inode."""
    os.fchmod(fd, PRIVATE_FILE_MODE)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{pid}\n{create_time!r}\n".encode("ascii"), 0)
    os.fsync(fd)


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


def _read_pid(fd: int) -> PidInfo:
    """Read the PID file open at fd from its start."""
    try:
        raw = os.pread(fd, MAX_PID_FILE_BYTES + 1, 0)
    except OSError as exc:
        return PidInfo(None, None, f"PID file is unreadable: {exc.strerror}")
    if len(raw) > MAX_PID_FILE_BYTES:
        return PidInfo(None, None, "PID file is garbage")
    return _parse_pid_text(raw.decode("ascii", errors="replace"))


def _open_pid_file(path: Path) -> int | None:
    """Open a PID file to read and lock it; None when it does not exist."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def read_pid_file(path: Path) -> PidInfo | None:
    """Read a PID file; None when it does not exist, a PidInfo with a problem when unusable."""
    try:
        fd = _open_pid_file(path)
    except OSError as exc:
        return PidInfo(None, None, f"PID file is unreadable: {exc.strerror}")
    if fd is None:
        return None
    try:
        return _read_pid(fd)
    finally:
        os.close(fd)


# --- alive and ours ---

def _runs(cmdline: list[str], marker: str) -> bool:
    """Tell whether a command line runs the program known by marker (its command file or module)."""
    return any(Path(part).name == marker for arg in cmdline for part in arg.split())


def _held(fd: int) -> bool:
    """Tell whether some process holds the file's exclusive lock, as its owner does for its whole life."""
    return not try_flock(fd, shared=True)


def _verify(name: str, info: PidInfo, fd: int) -> tuple[psutil.Process | None, str]:
    """Return (process, '') when info names the live program and its file (at fd) is held, else (None, why not)."""
    if info.pid is None:
        return None, info.problem
    pid = info.pid
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None, f"PID {pid} is not running (zombie)"
        if not _runs(process.cmdline(), program_named(name).marker):
            return None, f"PID {pid} is another program ({process.name()})"
        if info.create_time is None:
            return None, info.problem
        if abs(process.create_time() - info.create_time) >= CREATE_TIME_TOLERANCE:
            return None, f"PID {pid} was reused: start time differs"
    except psutil.NoSuchProcess:
        return None, f"PID {pid} is not running"
    except psutil.AccessDenied:
        return None, f"PID {pid} cannot be inspected (access denied)"
    if not _held(fd):
        # The live process holds a PID file of its own, elsewhere: this one is a copy.
        return None, f"PID {pid} serves another DATA_DIR (this PID file is a copy nobody holds)"
    return process, ""


def _inspect(name: str, fd: int) -> tuple[ServiceProcess, psutil.Process | None]:
    """Judge the PID file open at fd; the verified process comes along when it runs."""
    info = _read_pid(fd)
    process, why_not = _verify(name, info, fd)
    if process is None:
        return ServiceProcess(name, "stale", info.pid, info.create_time, why_not), None
    return ServiceProcess(name, "running", info.pid, info.create_time, "running"), process


def verified_process(data_dir: Path, name: str) -> tuple[ServiceProcess, psutil.Process | None]:
    """Check a program by its PID file and hand back its psutil.Process when it runs and is ours."""
    path = pid_file_path(data_dir, name)
    try:
        fd = _open_pid_file(path)
    except OSError as exc:
        return ServiceProcess(name, "stale", None, None, f"PID file is unreadable: {exc.strerror}"), None
    if fd is None:
        return ServiceProcess(name, "stopped", None, None, "no PID file"), None
    try:
        return _inspect(name, fd)
    finally:
        os.close(fd)


def check_service(data_dir: Path, name: str) -> ServiceProcess:
    """Tell whether a program runs, judged by its PID file verified against the live process."""
    return verified_process(data_dir, name)[0]


def signal_service(data_dir: Path, name: str, signum: int) -> bool:
    """Send a signal to the program only if its PID file names the verified live program."""
    status, process = verified_process(data_dir, name)
    if process is None:
        log.info("not signalling %s: %s", name, status.reason)
        return False
    try:
        # psutil re-checks PID and create time right before sending, closing the reuse gap.
        process.send_signal(signum)
    except psutil.NoSuchProcess:
        log.info("not signalling %s: PID %s exited meanwhile", name, status.pid)
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


def remove_stale_pid_file(data_dir: Path, name: str) -> bool:
    """Remove a PID file naming a dead or foreign process; never one a live process holds."""
    path = pid_file_path(data_dir, name)
    try:
        fd = _open_pid_file(path)
    except OSError as exc:
        log.warning("could not open PID file %s: %s", path, exc.strerror)
        return False
    if fd is None:
        return False
    try:
        # Shared: it fails while an owner holds the file, and keeps a starting owner out meanwhile.
        if not try_flock(fd, shared=True):
            return False
        status = _inspect(name, fd)[0]
        if status.state != "stale" or not _same_file(fd, path):
            return False
        try:
            os.unlink(path)
        except OSError as exc:
            log.warning("could not remove stale PID file %s: %s", path, exc.strerror)
            return False
        log.info("removed stale PID file of %s: %s", name, status.reason)
        return True
    finally:
        os.close(fd)


# --- holding a PID file ---

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
            info = _read_pid(fd)
            names_us = (
                info.pid == os.getpid() == self.pid
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


def _open_locked(path: Path, name: str) -> int:
    """Open the PID file and hold its exclusive lock, or raise ServiceAlreadyRunning."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE_MODE)
        if try_flock(fd):
            # The previous holder may have unlinked the file between our open and lock.
            if _same_file(fd, path):
                return fd
            os.close(fd)
            continue
        try:
            holder = _read_pid(fd)
            verified = _verify(name, holder, fd)[0] is not None
        finally:
            os.close(fd)
        if verified or time.monotonic() >= deadline:
            shown = holder.pid if holder.pid is not None else "unknown"
            raise ServiceAlreadyRunning(f"{name} is already running (PID {shown})")
        time.sleep(LOCK_RETRY_SECONDS)


def acquire_pid_file(data_dir: Path, name: str) -> PidFileLock:
    """Lock and write this process's PID file, raising ServiceAlreadyRunning if a copy runs."""
    path = pid_file_path(data_dir, name)
    fd = _open_locked(path, name)
    try:
        pid = os.getpid()
        create_time = psutil.Process(pid).create_time()
        write_pid(fd, pid, create_time)
    except BaseException:
        os.close(fd)
        raise
    log.debug("PID file %s written for PID %d", path, pid)
    return PidFileLock(path, fd, pid, create_time)


# --- starting and stopping ---

def _open_log(path: Path) -> int:
    """Open a log for appending, private, for a child's stdout and stderr."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)
    return fd


def spawn(argv: list[str], log_file: Path, env: dict, detached: bool, pass_fds: tuple = ()) -> subprocess.Popen:
    """Start a child with stdin closed and stdout/stderr appended to its log, never a pipe."""
    fd = _open_log(log_file)
    try:
        return subprocess.Popen(argv, cwd=PROJECT_DIR, env=env, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                                start_new_session=detached, pass_fds=pass_fds)
    finally:
        os.close(fd)


def spawn_holding_pid_file(data_dir: Path, name: str, argv: list[str], log_file: Path, env: dict,
                           detached: bool) -> subprocess.Popen:
    """Start a program that writes no PID file itself; it inherits the locked one we write for it.

    Raises ServiceAlreadyRunning when the verified program already holds it.
    """
    path = pid_file_path(data_dir, name)
    fd = _open_locked(path, name)
    process = None
    try:
        process = spawn(argv, log_file, env, detached, pass_fds=(fd,))
        write_pid(fd, process.pid, psutil.Process(process.pid).create_time())
    except BaseException:
        if process is not None:
            stop_children([process])
        # Written by us and never handed on: ours to remove.
        if _same_file(fd, path):
            os.unlink(path)
        raise
    finally:
        # The child's copy of the descriptor keeps the lock for its whole life.
        os.close(fd)
    return process


def _exited(process: psutil.Process) -> bool:
    """Tell whether a process has ended; a zombie has, whenever its parent gets round to reaping it."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _send_each(processes: list[psutil.Process], signum: int) -> None:
    """Signal each process that is still the one it was; one already gone is skipped."""
    for process in processes:
        try:
            process.send_signal(signum)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def stop_processes(processes: list[psutil.Process]) -> tuple[list, list]:
    """SIGTERM each process, SIGKILL those still there after STOP_DEADLINE; return (killed, survivors).

    psutil pins each process by its start time, so a PID reused meanwhile is never signalled.
    The caller reaps its own children (Popen.wait) afterwards.
    """
    _send_each(processes, signal.SIGTERM)
    wait_until(lambda: all(_exited(process) for process in processes), STOP_DEADLINE)
    killed = [process for process in processes if not _exited(process)]
    _send_each(killed, signal.SIGKILL)
    wait_until(lambda: all(_exited(process) for process in killed), KILL_DEADLINE)
    return killed, [process for process in killed if not _exited(process)]


def stop_children(children: list[subprocess.Popen]) -> tuple[list, list]:
    """Stop our own children the one way (stop_processes), reap them, and return (killed, survivors)."""
    running = []
    for child in children:
        if child.poll() is None:
            try:
                running.append(psutil.Process(child.pid))
            except psutil.NoSuchProcess:
                pass
    killed, survivors = stop_processes(running)
    unkillable = {process.pid for process in survivors}
    for child in children:
        if child.pid not in unkillable:
            child.wait()
    return killed, survivors


def running_demo_url(data_dir: Path) -> str | None:
    """The URL of the demo back end a launcher started, if it still runs."""
    if verified_process(data_dir, DEMO.name)[1] is None:
        return None
    try:
        return demo_url_path(data_dir).read_text().strip() or None
    except OSError:
        return None


# --- signals ---

class Signals:
    """Stop and wake signals for a loop: the handler only records them, wait() returns as one arrives.

    Used by every service (wake: SIGUSR1) and the foreground supervisor (wake: SIGCHLD, a child ended).
    """

    def __init__(self, wake: tuple = (WAKE_SIGNAL,), stopping: threading.Event | None = None):
        self.stopping = stopping if stopping is not None else threading.Event()
        self.stopped_by: int | None = None
        self._pending: deque[int] = deque()
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        # The C-level handler writes to this pipe, so select() returns even though
        # Python retries an interrupted select() by itself.
        self._old_wakeup_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        self._old_handlers = {s: signal.signal(s, self._record) for s in (*STOP_SIGNALS, *wake)}

    def _record(self, signum, frame) -> None:
        self._pending.append(signum)
        if signum in STOP_SIGNALS:
            if self.stopped_by is None:
                self.stopped_by = signum
            self.stopping.set()

    def _take(self) -> list[int]:
        taken = []
        while self._pending:
            taken.append(self._pending.popleft())
        return taken

    def wait(self, seconds: float | None) -> list[int]:
        """Wait up to seconds (None: until a signal); return the signals received meanwhile, at once."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while True:
            received = self._take()
            if received:
                return received
            remaining = None if deadline is None else deadline - time.monotonic()
            if self.stopping.is_set() or (remaining is not None and remaining <= 0):
                return []
            select.select([self._read_fd], [], [], remaining)
            try:
                while os.read(self._read_fd, 512):
                    pass
            except BlockingIOError:
                pass

    def close(self) -> None:
        """Put back the previous handlers and wake-up fd."""
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._old_wakeup_fd)
        os.close(self._read_fd)
        os.close(self._write_fd)

    def __enter__(self) -> "Signals":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
