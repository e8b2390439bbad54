"""The launcher starts each service once, detached, acts only on verified PID files, and leaves nothing behind."""

import fcntl
import os
import signal
import subprocess
import sys

import psutil
import pytest

from helpers import PROJECT_DIR, command_env, make_settings, run_command
from service_helpers import FAST, processes_of, wait_for, write_pid_file
from sleepguard.exceptions import SettingsError
from sleepguard.launcher import start_services, stop_services
from sleepguard.processes import check_service
from sleepguard.services import (AUTO_BACKUP, AUTO_RESTORE, DEMO, KEEP_ALIVE, SERVICES, demo_folder_path, log_path,
                                 pid_file_path)

START = "start_all_super_services.py"

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
    write_pid_file(data_dir, KEEP_ALIVE.name, dead)
    dead.wait()
    write_pid_file(data_dir, AUTO_BACKUP.name, sleeper)
    settings = make_settings(data_dir, demo_backend.url, **FAST)

    stopped = stop_services(settings)
    assert sleeper.poll() is None, "the stop signalled a process that is not ours"
    assert any(f"{AUTO_BACKUP.name}: not running" in line and "another program (sleep)" in line
               for line in stopped.lines), stopped.lines
    assert any(f"{KEEP_ALIVE.name}: not running" in line and "is not running" in line
               for line in stopped.lines), stopped.lines

    write_pid_file(data_dir, AUTO_BACKUP.name, sleeper)
    started = start_services(settings)
    assert started.exit_code == 0, started.lines
    assert all(check_service(data_dir, service.name).state == "running" for service in SERVICES)
    assert check_service(data_dir, AUTO_BACKUP.name).pid != sleeper.pid
    stop_services(settings)
    assert sleeper.poll() is None


def test_a_service_that_exits_at_once_is_reported_with_its_log(data_dir, demo_backend, stopped_afterwards):
    # Someone else holds the backup service's PID file lock: the service must refuse to start.
    path = pid_file_path(data_dir, AUTO_BACKUP.name)
    with open(path, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write(f"{os.getpid()}\n{psutil.Process().create_time()!r}\n")
        held.flush()
        report = start_services(make_settings(data_dir, demo_backend.url, **FAST))
    assert report.exit_code == 1
    text = "\n".join(report.lines)
    assert f"{AUTO_BACKUP.name} exited at once" in text
    assert "already running" in text.split("exited at once", 1)[1], text
    assert check_service(data_dir, KEEP_ALIVE.name).state == "running"
    assert check_service(data_dir, AUTO_RESTORE.name).state == "running"


def test_no_backend_url_explains_what_to_set(data_dir):
    with pytest.raises(SettingsError, match="BACKEND_URL.*--demo"):
        start_services(make_settings(data_dir))
    assert processes_of(data_dir) == []


def test_stop_in_a_copy_of_a_running_data_dir_leaves_the_original_running(data_dir, tmp_path, stopped_afterwards):
    started = run_command(START, "--demo", env=command_env(data_dir, "", **FAST))
    assert started.returncode == 0, started.stdout + started.stderr
    names = [service.name for service in SERVICES] + [DEMO.name]
    # In demo mode every PID file is in the demo's folder.
    demo, copy_demo = demo_folder_path(data_dir), demo_folder_path(tmp_path / "copy")
    pids = {name: check_service(demo, name).pid for name in names}
    assert all(check_service(demo, name).state == "running" for name in names)

    copy = tmp_path / "copy"
    # The services write while cp runs: a temp file may vanish under it, so cp's exit code is not the point.
    subprocess.run(["cp", "-a", str(data_dir), str(copy)], capture_output=True)
    for name in names:
        assert pid_file_path(copy_demo, name).read_text() == pid_file_path(demo, name).read_text()
        assert check_service(copy_demo, name).state == "stale"
        assert "another DATA_DIR" in check_service(copy_demo, name).reason

    stopped = run_command(START, "--stop", env=command_env(copy, "", **FAST))
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    lines = stopped.stdout.splitlines()
    assert len(lines) == len(names) and all("not running; removed its stale PID file" in line for line in lines), lines
    for name in names:
        status = check_service(demo, name)
        assert (status.state, status.pid) == ("running", pids[name]), f"--stop in the copy stopped {name}"
        assert psutil.Process(pids[name]).status() != psutil.STATUS_ZOMBIE
        assert not pid_file_path(copy_demo, name).exists(), "the copy's stale PID file stays behind"
    # The copy's URL file stays, naming the port a later --demo there would take again if free.
    assert (copy_demo / f"{DEMO.name}.url").read_text() == (demo / f"{DEMO.name}.url").read_text()


def test_the_foreground_supervisor_wakes_when_a_child_dies_while_it_waits(data_dir, demo_backend, tmp_path,
                                                                          stopped_afterwards):
    env = command_env(data_dir, demo_backend.url, **FAST)
    with open(tmp_path / "supervisor.log", "w+") as output:
        supervisor = subprocess.Popen([sys.executable, str(PROJECT_DIR / START), "--foreground"], cwd=PROJECT_DIR,
                                      env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=output)
        try:
            for crash in range(2):
                # The second kill lands while the supervisor waits: only its SIGCHLD wake-up can notice it.
                wait_for(lambda: check_service(data_dir, AUTO_RESTORE.name).state == "running")
                killed = check_service(data_dir, AUTO_RESTORE.name).pid
                psutil.Process(killed).kill()

                def restarted():
                    status = check_service(data_dir, AUTO_RESTORE.name)
                    return status.state == "running" and status.pid != killed

                wait_for(restarted)
        finally:
            supervisor.send_signal(signal.SIGTERM)
            assert supervisor.wait(20) == 0
        output.seek(0)
        log = output.read()
    assert "restarting in 1 s" in log and "restarting in 2 s" in log, log
    assert processes_of(data_dir) == []


def test_the_foreground_supervisor_runs_the_demo_in_its_own_folder_and_ends_it(data_dir, tmp_path, stopped_afterwards):
    env = command_env(data_dir, "", **FAST)
    folder = demo_folder_path(data_dir)
    with open(tmp_path / "supervisor.log", "w+") as output:
        supervisor = subprocess.Popen([sys.executable, str(PROJECT_DIR / START), "--foreground", "--demo"],
                                      cwd=PROJECT_DIR, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=output)
        try:
            wait_for(lambda: all(check_service(folder, name).state == "running"
                                 for name in [service.name for service in SERVICES] + [DEMO.name]))
            demo_pid = check_service(folder, DEMO.name).pid
            assert all(not pid_file_path(data_dir, service.name).exists() for service in SERVICES)
        finally:
            supervisor.send_signal(signal.SIGTERM)
            assert supervisor.wait(20) == 0
    assert not psutil.pid_exists(demo_pid) or psutil.Process(demo_pid).status() == psutil.STATUS_ZOMBIE
    assert processes_of(folder) == [] and processes_of(data_dir) == []
