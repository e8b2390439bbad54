"""start_all_super_services.py as the owner runs it: start, status, kill -9, restart, stop, --demo, --foreground."""

import json
import os
import signal
import subprocess
import sys

import psutil
import requests

from helpers import PROJECT_DIR, command_env, run_command, seed_shop
from sleepguard.processes import check_service
from sleepguard.services import (AUTO_BACKUP, AUTO_RESTORE, DEMO, SERVICES, demo_folder_path, demo_token_path,
                                 demo_url_path, log_path, pid_file_path)
from service_helpers import FAST, processes_of, wait_for

START = "start_all_super_services.py"
STATUS = "backup_status.py"
NAMES = [service.name for service in SERVICES]


def running_pids(data_dir):
    return {name: check_service(data_dir, name).pid for name in NAMES
            if check_service(data_dir, name).state == "running"}


def test_start_status_kill_start_stop(data_dir, demo_backend, stopped_afterwards):
    env = command_env(data_dir, demo_backend.url, **FAST)
    started = run_command(START, env=env)
    assert started.returncode == 0, started.stdout + started.stderr
    pids = running_pids(data_dir)
    assert sorted(pids) == sorted(NAMES)
    for name in NAMES:
        assert f"{name}  " in started.stdout and str(pids[name]) in started.stdout
    assert "python3 backup_status.py" in started.stdout
    assert f"tail -F {data_dir.resolve() / AUTO_RESTORE.log_name}" in started.stdout

    again = run_command(START, env=env)
    assert again.returncode == 0
    assert again.stdout.count("  already running  ") == 3, again.stdout
    assert running_pids(data_dir) == pids
    assert len(processes_of(data_dir)) == 3

    def status_says_protected():
        return run_command(STATUS, env=env).returncode == 0

    wait_for(status_says_protected)
    as_json = json.loads(run_command(STATUS, "--json", env=env).stdout)
    assert as_json["protected"] is True and as_json["last_good_backup"]["fresh"] is True
    assert [service["state"] for service in as_json["services"]] == ["running"] * 3

    psutil.Process(pids[AUTO_BACKUP.name]).kill()
    killed = run_command(STATUS, env=env)
    assert killed.returncode == 2  # NOT PROTECTED (issue 12's exit codes)
    assert f"The {AUTO_BACKUP.title} service is not running." in killed.stdout, killed.stdout
    assert f"STALE PID file: PID {pids[AUTO_BACKUP.name]} is not running" in killed.stdout, killed.stdout

    restarted = run_command(START, env=env)
    assert restarted.returncode == 0, restarted.stdout
    assert restarted.stdout.count("  already running  ") == 2 and restarted.stdout.count("  started  ") == 1
    new_pids = running_pids(data_dir)
    assert new_pids[AUTO_BACKUP.name] != pids[AUTO_BACKUP.name]

    stopped = run_command(START, "--stop", env=env)
    assert stopped.returncode == 0
    for name in NAMES:
        assert f"{name}: stopped (PID {new_pids[name]})" in stopped.stdout
    after = run_command(STATUS, "--json", env=env)
    assert after.returncode == 2
    assert [service["state"] for service in json.loads(after.stdout)["services"]] == ["stopped"] * 3
    assert processes_of(data_dir) == []


def test_twenty_launchers_at_once_start_each_service_once(data_dir, demo_backend, stopped_afterwards):
    env = command_env(data_dir, demo_backend.url, **FAST)
    launchers = [subprocess.Popen([sys.executable, str(PROJECT_DIR / START)], cwd=PROJECT_DIR, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(20)]
    outputs = [launcher.communicate(timeout=90) for launcher in launchers]
    assert [launcher.returncode for launcher in launchers] == [0] * 20, outputs
    scripts = sorted(arg.rsplit("/", 1)[-1] for process in processes_of(data_dir) for arg in process.cmdline()
                     if arg.endswith(".py"))
    assert scripts == sorted(f"{name}.py" for name in NAMES)
    stdout = [out for out, _err in outputs]
    assert sum(out.count(" started ") for out in stdout) == 3, stdout
    assert sum("all three services were already running: nothing started" in out for out in stdout) == 19
    # The launchers took turns: none spawned a copy that then had to refuse to run.
    for service in SERVICES:
        log = log_path(data_dir, service).read_text()
        assert log.count(f"{service.name} started (PID") == 1 and "not starting" not in log, log


def test_demo_is_started_backed_up_and_stopped(data_dir, stopped_afterwards):
    env = command_env(data_dir, "", **FAST)
    started = run_command(START, "--demo", env=env)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "demo back end started at http://127.0.0.1:" in started.stdout
    demo_pid = int(pid_file_path(demo_folder_path(data_dir), DEMO.name).read_text().split()[0])
    assert DEMO.module in psutil.Process(demo_pid).cmdline()

    def seeded_shop_backed_up():
        status = json.loads(run_command(STATUS, "--json", env=env).stdout)
        backup = status["last_good_backup"]
        return backup is not None and backup["counts"]["users"] == 1 and backup["counts"]["customers"] == 5

    wait_for(seeded_shop_backed_up)
    status = run_command(STATUS, env=env)
    assert "(demo)  reachable" in status.stdout
    assert "1 user, 5 customers" in status.stdout  # singular right (issue 12)

    url = demo_url_path(demo_folder_path(data_dir)).read_text().strip()
    stopped = run_command(START, "--stop", env=env)
    assert f"stopped the demo back end (PID {demo_pid})" in stopped.stdout
    assert not psutil.pid_exists(demo_pid) or psutil.Process(demo_pid).status() == psutil.STATUS_ZOMBIE
    assert processes_of(data_dir) == [] and processes_of(demo_folder_path(data_dir)) == []

    # Started again after a stop: the same URL, so its backups are still its own (on another port they would be
    # another back end's, held as foreign and never restored), and the walk-through can run again.
    again = run_command(START, "--demo", env=env)
    assert again.returncode == 0 and f"demo back end started at {url} " in again.stdout, again.stdout + again.stderr
    wait_for(lambda: run_command(STATUS, env=env).returncode == 0)
    stopped = run_command(START, "--stop", env=env)
    assert "stopped the demo back end" in stopped.stdout
    assert processes_of(data_dir) == [] and processes_of(demo_folder_path(data_dir)) == []


def test_without_backend_url_it_says_what_to_set(data_dir):
    result = run_command(START, env=command_env(data_dir, ""))
    assert result.returncode == 2
    assert "BACKEND_URL is not set" in result.stderr and "--demo" in result.stderr
    assert result.stderr.strip().count("\n") <= 1 and result.stdout == ""
    assert processes_of(data_dir) == []


def test_foreground_restarts_a_killed_child_and_ends_them_all(data_dir, demo_backend, tmp_path, stopped_afterwards):
    env = command_env(data_dir, demo_backend.url, **FAST)
    with open(tmp_path / "supervisor.log", "w+") as output:
        supervisor = subprocess.Popen([sys.executable, str(PROJECT_DIR / START), "--foreground"], cwd=PROJECT_DIR,
                                      env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=output)
        children = []
        try:
            wait_for(lambda: len(running_pids(data_dir)) == 3)
            pids = running_pids(data_dir)
            assert {child.pid for child in psutil.Process(supervisor.pid).children()} == set(pids.values())

            psutil.Process(pids[AUTO_RESTORE.name]).kill()

            def killed_child_is_back():
                now = running_pids(data_dir).get(AUTO_RESTORE.name)
                return now is not None and now != pids[AUTO_RESTORE.name]

            wait_for(killed_child_is_back)
            children = psutil.Process(supervisor.pid).children()
            assert len(children) == 3
        finally:
            supervisor.send_signal(signal.SIGTERM)
            assert supervisor.wait(20) == 0
        gone, alive = psutil.wait_procs(children, timeout=5)
        assert alive == []
        output.seek(0)
        log = output.read()
    assert f"{AUTO_RESTORE.name} exited with code -9" in log and "restarting in 1 s" in log, log
    assert log.count("received SIGTERM: stopping the services") == 1
    assert running_pids(data_dir) == {}
    assert processes_of(data_dir) == []


# --- the demo started by --demo: its own folder and token, used by every command, kept across restarts ---

REAL_TOKEN = "real-snapshot-token-5c0ffee9a1"


def demo_users(url):
    return sorted(user["email"] for user in requests.get(f"{url}/api/users", timeout=10).json())


def admin_answer(url, token):
    return requests.get(f"{url}/api/admin/snapshot", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code


def test_after_demo_every_command_uses_it_and_restarts_keep_its_port_token_and_data(data_dir, stopped_afterwards):
    env = command_env(data_dir, "", API_TOKEN=REAL_TOKEN, **FAST)
    folder = demo_folder_path(data_dir)
    started = run_command(START, "--demo", env=env)
    assert started.returncode == 0, started.stdout + started.stderr
    url, token = demo_url_path(folder).read_text().strip(), demo_token_path(folder).read_text().strip()
    assert os.stat(demo_token_path(folder)).st_mode & 0o777 == 0o600
    assert len(token) >= 20 and token != REAL_TOKEN and token not in started.stdout + started.stderr
    assert admin_answer(url, token) == 200 and admin_answer(url, REAL_TOKEN) == 401, "the demo took API_TOKEN"
    assert f'Bearer $(cat {demo_token_path(folder.resolve())})' in started.stdout

    plain = run_command(START, env=env)
    assert plain.returncode == 0 and plain.stdout.count("  already running  ") == 3, plain.stdout + plain.stderr
    assert f"using the demo back end at {url}" in plain.stderr and plain.stderr.count("\n") == 1, plain.stderr

    def protected():
        return run_command(STATUS, env=env).returncode == 0

    wait_for(protected)
    status = run_command(STATUS, env=env)
    assert f"{url} (demo)  reachable" in status.stdout and status.stderr == ""
    backup = run_command("manual_backup.py", env=env)
    assert backup.returncode == 0 and "using the demo back end" in backup.stderr, backup.stdout + backup.stderr
    dry_run = run_command("restore_simple.py", "--dry-run", env=env)
    assert dry_run.returncode == 0 and "using the demo back end" in dry_run.stderr, dry_run.stdout + dry_run.stderr
    assert f"backup: {folder / 'data_backup.json'}" in dry_run.stdout
    assert not (data_dir / "data_backup.json").exists(), "demo backups mixed with the real shop's"
    # BACKEND_URL naming another back end wins, and the command says the demo it is not looking at runs.
    elsewhere = run_command("manual_backup.py", "--list", env={**env, "BACKEND_URL": "http://127.0.0.1:9"})
    assert f"working on http://127.0.0.1:9, not on the demo back end that runs at {url}" in elsewhere.stderr
    assert elsewhere.stderr.count("\n") == 1 and "Traceback" not in elsewhere.stderr, elsewhere.stderr

    seed_shop(url, users=1, customers=1, prefix="added")
    demo_pid = check_service(folder, DEMO.name).pid
    for how in (["--restart"], ["--restart", "--demo"]):
        restarted = run_command(START, *how, env=env)
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        assert restarted.stdout.count("  started  ") == 3 and "its data kept" in restarted.stdout
        assert check_service(folder, DEMO.name).pid == demo_pid
        assert demo_url_path(folder).read_text().strip() == url and demo_token_path(folder).read_text().strip() == token
        assert demo_users(url) == ["added0@example.com", "owner@example.com"], f"{how} lost the demo's data"

    fresh = run_command(START, "--fresh-demo", env=env)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert demo_token_path(folder).read_text().strip() != token
    assert demo_users(demo_url_path(folder).read_text().strip()) == ["owner@example.com"]

    stopped = run_command(START, "--stop", env=env)
    assert stopped.returncode == 0 and "stopped the demo back end" in stopped.stdout, stopped.stdout
    assert processes_of(data_dir) == [] and processes_of(folder) == []


def test_a_backend_url_besides_the_demo_is_refused_saying_which_to_choose(data_dir, demo_backend, stopped_afterwards):
    other = command_env(data_dir, demo_backend.url, **FAST)
    refused = run_command(START, "--demo", env=other)
    assert refused.returncode == 2 and "choose one" in refused.stderr and "unset BACKEND_URL" in refused.stderr
    assert processes_of(data_dir) == [] and not demo_folder_path(data_dir).exists()

    started = run_command(START, "--demo", env=command_env(data_dir, "", **FAST))
    assert started.returncode == 0, started.stdout + started.stderr
    folder = demo_folder_path(data_dir)
    pids = running_pids(folder)
    for how in ([], ["--restart"]):
        mixed = run_command(START, *how, env=other)
        assert mixed.returncode == 2, mixed.stdout + mixed.stderr
        assert "choose one" in mixed.stderr and "--stop" in mixed.stderr and mixed.stdout == ""
        assert running_pids(folder) == pids, f"{how or 'start'} touched the demo's services"
        assert running_pids(data_dir) == {}, "services started against the other back end"
