"""PID files: written with PID and start time, trusted only while their service holds them, removed by their writer."""

import fcntl
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from sleepguard import processes
from sleepguard.exceptions import ServiceAlreadyRunning
from sleepguard.processes import (Signals, acquire_pid_file, check_service, read_pid_file, remove_stale_pid_file,
                                  signal_service, spawn_holding_pid_file, stop_processes)
from sleepguard.services import pid_file_path

REPO_DIR = Path(__file__).resolve().parent.parent
SERVICE = "demo_pid_service"
# A stand-in service: its command line names demo_pid_service.py; with a folder argument it
# holds the PID file like a real service. It lives until its stdin closes.
SERVICE_SCRIPT = """
import sys
from pathlib import Path
from sleepguard.processes import acquire_pid_file
lock = acquire_pid_file(Path(sys.argv[1]), "demo_pid_service") if len(sys.argv) > 1 else None
print("ready", flush=True)
sys.stdin.read()
if lock is not None:
    lock.release()
"""


@pytest.fixture
def start_process(tmp_path):
    """Start processes that are all ended after the test."""
    started = []

    def start(argv):
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                   env={**os.environ, "PYTHONPATH": str(REPO_DIR)})
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.fixture
def fake_service(tmp_path, start_process):
    """Start the stand-in service (holding the PID file in the given folder, if any); wait until ready."""
    script = tmp_path / f"{SERVICE}.py"
    script.write_text(SERVICE_SCRIPT)

    def start(data_dir=None):
        process = start_process([sys.executable, str(script)] + ([str(data_dir)] if data_dir else []))
        assert process.stdout.readline().strip() == "ready"
        return process

    return start


@pytest.fixture
def hold_pid_file(tmp_path):
    """Hold the PID file's lock for the test, as its owner would: the stand-in writes no PID file of its own."""
    held = []

    def hold():
        fd = os.open(pid_file_path(tmp_path, SERVICE), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        held.append(fd)

    yield hold
    for fd in held:
        os.close(fd)


def write_pid_file(data_dir, pid, create_time):
    """Write a PID file the way a service does (in place: a lock on it stays)."""
    pid_file_path(data_dir, SERVICE).write_text(f"{pid}\n{create_time!r}\n")


def test_missing_pid_file_means_stopped(tmp_path):
    status = check_service(tmp_path, SERVICE)
    assert (status.state, status.pid, status.reason) == ("stopped", None, "no PID file")
    assert read_pid_file(pid_file_path(tmp_path, SERVICE)) is None
    assert remove_stale_pid_file(tmp_path, SERVICE) is False


def test_acquire_writes_pid_and_start_time_privately_and_release_removes_it(tmp_path):
    old_umask = os.umask(0)
    try:
        lock = acquire_pid_file(tmp_path, SERVICE)
    finally:
        os.umask(old_umask)
    path = pid_file_path(tmp_path, SERVICE)
    pid_line, time_line = path.read_text().splitlines()
    assert int(pid_line) == os.getpid()
    assert abs(float(time_line) - psutil.Process().create_time()) < 0.01
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with lock:
        pass
    assert not path.exists()


def test_release_keeps_a_file_that_names_another_process(tmp_path):
    lock = acquire_pid_file(tmp_path, SERVICE)
    path = pid_file_path(tmp_path, SERVICE)
    with open(path, "r+") as pid_file:  # in place, as another writer would
        pid_file.truncate()
        pid_file.write("1\n12345.0\n")
    lock.release()
    assert path.read_text() == "1\n12345.0\n"


def test_forked_child_neither_removes_nor_unlocks_the_file(tmp_path):
    lock = acquire_pid_file(tmp_path, SERVICE)
    path = pid_file_path(tmp_path, SERVICE)
    child = os.fork()
    if child == 0:
        try:
            lock.release()
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    assert path.exists()
    # The file names the test runner, not a demo_pid_service.py: stale, but still locked by us.
    assert check_service(tmp_path, SERVICE).state == "stale"
    assert remove_stale_pid_file(tmp_path, SERVICE) is False
    assert path.exists()
    lock.release()
    assert not path.exists()


def test_dead_pid_is_stale_and_removable(tmp_path):
    finished = subprocess.Popen(["true"])
    finished.wait()
    write_pid_file(tmp_path, finished.pid, time.time() - 1)
    status = check_service(tmp_path, SERVICE)
    assert status.state == "stale"
    assert status.reason == f"PID {finished.pid} is not running"
    assert signal_service(tmp_path, SERVICE, signal.SIGTERM) is False
    assert remove_stale_pid_file(tmp_path, SERVICE) is True
    assert not pid_file_path(tmp_path, SERVICE).exists()


def test_zombie_is_not_running(tmp_path, fake_service, hold_pid_file):
    service = fake_service()
    hold_pid_file()
    write_pid_file(tmp_path, service.pid, psutil.Process(service.pid).create_time())
    assert check_service(tmp_path, SERVICE).state == "running"
    service.stdin.close()
    deadline = time.monotonic() + 5
    while psutil.Process(service.pid).status() != psutil.STATUS_ZOMBIE:  # exited, not yet reaped
        assert time.monotonic() < deadline
        time.sleep(0.01)
    status = check_service(tmp_path, SERVICE)
    assert (status.state, status.reason) == ("stale", f"PID {service.pid} is not running (zombie)")
    assert signal_service(tmp_path, SERVICE, signal.SIGTERM) is False


def test_foreign_process_is_stale_and_never_signalled(tmp_path, start_process):
    sleeper = start_process(["sleep", "60"])
    write_pid_file(tmp_path, sleeper.pid, psutil.Process(sleeper.pid).create_time())
    status = check_service(tmp_path, SERVICE)
    assert status.state == "stale"
    assert status.reason == f"PID {sleeper.pid} is another program (sleep)"
    assert signal_service(tmp_path, SERVICE, signal.SIGTERM) is False
    assert remove_stale_pid_file(tmp_path, SERVICE) is True
    assert sleeper.poll() is None, "a foreign process was signalled"


def test_reused_pid_is_stale_and_never_signalled(tmp_path, fake_service, hold_pid_file):
    service = fake_service()
    hold_pid_file()
    real_start = psutil.Process(service.pid).create_time()
    write_pid_file(tmp_path, service.pid, real_start - 100)
    status = check_service(tmp_path, SERVICE)
    assert (status.state, status.reason) == ("stale", f"PID {service.pid} was reused: start time differs")
    assert signal_service(tmp_path, SERVICE, signal.SIGTERM) is False
    assert service.poll() is None, "a reused PID was signalled"

    write_pid_file(tmp_path, service.pid, real_start)
    status = check_service(tmp_path, SERVICE)
    assert (status.state, status.pid, status.started_at) == ("running", service.pid, real_start)
    assert remove_stale_pid_file(tmp_path, SERVICE) is False
    assert signal_service(tmp_path, SERVICE, signal.SIGTERM) is True
    assert service.wait(timeout=5) == -signal.SIGTERM


@pytest.mark.parametrize("content", [b"", b"garbage\n", b"-5\n1.0\n", b"12x\n", b"\xff\xfe\x00", b"9" * 500])
def test_garbage_pid_file_is_stale_without_exception(tmp_path, content):
    pid_file_path(tmp_path, SERVICE).write_bytes(content)
    info = read_pid_file(pid_file_path(tmp_path, SERVICE))
    assert info.pid is None and info.problem
    status = check_service(tmp_path, SERVICE)
    assert status.state == "stale" and status.reason == info.problem
    assert signal_service(tmp_path, SERVICE, signal.SIGTERM) is False
    assert remove_stale_pid_file(tmp_path, SERVICE) is True


def test_unreadable_pid_file_and_pid_without_start_time_are_stale(tmp_path, fake_service):
    pid_file_path(tmp_path, SERVICE).mkdir()
    assert check_service(tmp_path, SERVICE).state == "stale"
    pid_file_path(tmp_path, SERVICE).rmdir()
    service = fake_service()
    pid_file_path(tmp_path, SERVICE).write_text(f"{service.pid}\n")
    status = check_service(tmp_path, SERVICE)
    assert (status.state, status.pid) == ("stale", service.pid)
    assert "no start time" in status.reason
    assert signal_service(tmp_path, SERVICE, signal.SIGTERM) is False
    assert service.poll() is None


def test_second_holder_refused_and_locked_file_never_removed(tmp_path, fake_service):
    service = fake_service(tmp_path)
    path = pid_file_path(tmp_path, SERVICE)
    assert check_service(tmp_path, SERVICE).state == "running"
    with pytest.raises(ServiceAlreadyRunning, match=rf"^{SERVICE} is already running \(PID {service.pid}\)$"):
        acquire_pid_file(tmp_path, SERVICE)

    with open(path, "r+") as pid_file:  # spoil it in place: the lock stays on the inode
        pid_file.truncate()
        pid_file.write("garbage")
    assert check_service(tmp_path, SERVICE).state == "stale"
    assert remove_stale_pid_file(tmp_path, SERVICE) is False
    assert path.read_text() == "garbage"
    with pytest.raises(ServiceAlreadyRunning, match=r"already running \(PID unknown\)"):
        acquire_pid_file(tmp_path, SERVICE)

    service.stdin.close()
    assert service.wait(timeout=5) == 0
    assert path.read_text() == "garbage", "a PID file naming someone else was removed"
    with acquire_pid_file(tmp_path, SERVICE):
        assert read_pid_file(path).pid == os.getpid()


def test_a_copied_pid_file_is_stale_and_removing_it_spares_the_original(tmp_path, fake_service):
    original, copy = tmp_path / "original", tmp_path / "copy"
    original.mkdir()
    copy.mkdir()
    service = fake_service(original)
    shutil.copy2(pid_file_path(original, SERVICE), pid_file_path(copy, SERVICE))
    status = check_service(copy, SERVICE)
    assert (status.state, status.pid) == ("stale", service.pid)
    assert status.reason == f"PID {service.pid} serves another DATA_DIR (this PID file is a copy nobody holds)"
    assert signal_service(copy, SERVICE, signal.SIGTERM) is False
    assert remove_stale_pid_file(copy, SERVICE) is True
    assert check_service(original, SERVICE).state == "running"
    assert service.poll() is None, "the original was signalled through a copy of its PID file"


@pytest.fixture
def sleeping_program(tmp_path):
    """argv of a program known as SERVICE that writes no PID file and lives a minute (stdin is closed for it)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / f"{SERVICE}.py").write_text("import time\ntime.sleep(60)\n")
    return [sys.executable, str(folder / f"{SERVICE}.py")]


def test_a_program_started_holding_its_pid_file_is_ours_until_it_dies(tmp_path, sleeping_program):
    process = spawn_holding_pid_file(tmp_path, SERVICE, sleeping_program, tmp_path / "out.log", dict(os.environ),
                                     detached=True)
    try:
        status = check_service(tmp_path, SERVICE)
        assert (status.state, status.pid) == ("running", process.pid)
        assert abs(status.started_at - psutil.Process(process.pid).create_time()) < 0.01
        assert stat.S_IMODE(pid_file_path(tmp_path, SERVICE).stat().st_mode) == 0o600
        with pytest.raises(ServiceAlreadyRunning, match=rf"already running \(PID {process.pid}\)"):
            spawn_holding_pid_file(tmp_path, SERVICE, sleeping_program, tmp_path / "out.log", dict(os.environ),
                                   detached=True)
        with pytest.raises(ServiceAlreadyRunning):
            acquire_pid_file(tmp_path, SERVICE)
        assert remove_stale_pid_file(tmp_path, SERVICE) is False
    finally:
        process.kill()
        process.wait()
    status = check_service(tmp_path, SERVICE)
    assert (status.state, status.reason) == ("stale", f"PID {process.pid} is not running")
    assert remove_stale_pid_file(tmp_path, SERVICE) is True


def test_stop_ends_the_willing_with_sigterm_and_kills_the_stubborn(monkeypatch, start_process):
    monkeypatch.setattr(processes, "STOP_DEADLINE", 0.5)
    willing = start_process(["sleep", "60"])
    stubborn = start_process([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                              "signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"])
    assert stubborn.stdout.readline().strip() == "ready"
    killed, survivors = stop_processes([psutil.Process(willing.pid), psutil.Process(stubborn.pid)])
    assert [process.pid for process in killed] == [stubborn.pid] and survivors == []
    assert (willing.wait(5), stubborn.wait(5)) == (-signal.SIGTERM, -signal.SIGKILL)


def test_signals_only_record_and_the_wait_ends_as_one_arrives():
    before = signal.getsignal(signal.SIGTERM)
    with Signals(wake=(signal.SIGCHLD,)) as signals:
        assert signals.wait(0.01) == []
        child = subprocess.Popen(["true"])
        assert signal.SIGCHLD in signals.wait(30), "a child's exit did not end the wait"
        child.wait()
        assert not signals.stopping.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.wait(30) == [signal.SIGTERM]
        assert signals.stopping.is_set() and signals.stopped_by == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before, "the previous handler is back"
