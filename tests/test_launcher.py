"""The launcher starts each service once, detached, acts only on verified PID files, and leaves nothing behind."""

import fcntl
import os
import subprocess

import psutil
import pytest

from helpers import make_settings
from service_helpers import FAST, processes_of, write_pid_file
from sleepguard.exceptions import SettingsError
from sleepguard.launcher import start_services, stop_services
from sleepguard.processes import check_service
from sleepguard.services import SERVICES, log_path, pid_file_path

def test_start_is_idempotent_and_stop_ends_everything(data_dir, demo_backend, stopped_afterwards):
    settings = make_settings(data_dir, demo_backend.url, **FAST)
    first = start_services(settings)
    assert first.exit_code == 0, first.lines
    pids = {service.name: check_service(data_dir, service.name).pid for service in SERVICES}
    assert all(check_service(data_dir, name).state == "running" for name in pids)
    assert sorted(p.pid for p in processes_of(data_dir)) == sorted(pids.values())
    for service in SERVICES:
        assert os.stat(log_path(data_dir, service)).st_mode & 0o777 == 0o600
        assert os.getsid(pids[service.name]) != os.getsid(0), "a detached service has a session of its own"

    second = start_services(settings)
    assert second.exit_code == 0
    assert "all three services were already running: nothing started" in second.lines
    assert {service.name: check_service(data_dir, service.name).pid for service in SERVICES} == pids

    stopped = stop_services(settings)
    assert stopped.exit_code == 0
    assert [line for line in stopped.lines if "stopped (PID" in line] == \
        [f"{name}: stopped (PID {pid})" for name, pid in pids.items()]
    assert processes_of(data_dir) == []
    assert all(not pid_file_path(data_dir, name).exists() for name in pids)


def test_stop_never_signals_a_foreign_process_and_start_replaces_stale_files(data_dir, demo_backend, sleeper,
                                                                             stopped_afterwards):
    dead = subprocess.Popen(["true"])
    write_pid_file(data_dir, "keep_alive_super_aggressive", dead)
    dead.wait()
    write_pid_file(data_dir, "auto_backup_super_aggressive", sleeper)
    settings = make_settings(data_dir, demo_backend.url, **FAST)

    stopped = stop_services(settings)
    assert sleeper.poll() is None, "the stop signalled a process that is not ours"
    assert any("auto_backup_super_aggressive: not running" in line and "another program (sleep)" in line
               for line in stopped.lines), stopped.lines
    assert any("keep_alive_super_aggressive: not running" in line and "is not running" in line
               for line in stopped.lines), stopped.lines

    write_pid_file(data_dir, "auto_backup_super_aggressive", sleeper)
    started = start_services(settings)
    assert started.exit_code == 0, started.lines
    assert all(check_service(data_dir, service.name).state == "running" for service in SERVICES)
    assert check_service(data_dir, "auto_backup_super_aggressive").pid != sleeper.pid
    stop_services(settings)
    assert sleeper.poll() is None


def test_a_service_that_exits_at_once_is_reported_with_its_log(data_dir, demo_backend, stopped_afterwards):
    # Someone else holds the backup service's PID file lock: the service must refuse to start.
    path = pid_file_path(data_dir, "auto_backup_super_aggressive")
    with open(path, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write(f"{os.getpid()}\n{psutil.Process().create_time()!r}\n")
        held.flush()
        report = start_services(make_settings(data_dir, demo_backend.url, **FAST))
    assert report.exit_code == 1
    text = "\n".join(report.lines)
    assert "auto_backup_super_aggressive exited at once" in text
    assert "already running" in text.split("exited at once", 1)[1], text
    assert check_service(data_dir, "keep_alive_super_aggressive").state == "running"
    assert check_service(data_dir, "auto_restore_service").state == "running"


def test_no_backend_url_explains_what_to_set(data_dir):
    with pytest.raises(SettingsError, match="BACKEND_URL.*--demo"):
        start_services(make_settings(data_dir))
    assert processes_of(data_dir) == []
