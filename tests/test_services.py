"""The registry: every service and its files are named once, there, and the status screen needs nothing else."""

import subprocess
import sys

from helpers import PROJECT_DIR
from sleepguard import auto_backup, auto_restore, keep_alive, restart
from sleepguard.services import (AUTO_BACKUP, AUTO_RESTORE, DEMO, KEEP_ALIVE, SERVICES, Program, demo_url_path,
                                 log_path, pid_file_path, program_named, state_file_path)

PACKAGE_DIR = PROJECT_DIR / "sleepguard"


def test_each_service_is_its_command_and_keeps_its_files_in_data_dir(tmp_path):
    assert [service.name for service in SERVICES] == [
        "keep_alive_super_aggressive", "auto_backup_super_aggressive", "auto_restore_service"]
    for service in SERVICES:
        assert service.command == PROJECT_DIR / f"{service.name}.py" and service.command.is_file()
        assert pid_file_path(tmp_path, service.name) == tmp_path / f"{service.name}.pid"
        assert state_file_path(tmp_path, service.name) == tmp_path / f"{service.name}.state.json"
        assert log_path(tmp_path, service).parent == tmp_path
    assert [log_path(tmp_path, service).name for service in SERVICES] == [
        "keep_alive_super_aggressive.log", "auto_backup_super_aggressive.log", "auto_restore.log"]


def test_the_demo_back_end_is_known_by_its_module_and_keeps_its_files_beside_the_services(tmp_path):
    assert DEMO.marker == "sleepguard.demo_backend"
    assert (PROJECT_DIR / (DEMO.module.replace(".", "/") + ".py")).is_file()
    assert [pid_file_path(tmp_path, DEMO.name).name, demo_url_path(tmp_path).name, log_path(tmp_path, DEMO).name] \
        == ["demo_backend.pid", "demo_backend.url", "demo_backend.log"]


def test_lookup_by_name_finds_the_registered_ones_and_names_a_stand_in_by_its_command_file():
    for program in (*SERVICES, DEMO):
        assert program_named(program.name) is program
    assert program_named("demo_tick_service") == Program("demo_tick_service", "demo_tick_service.log", "demo_tick_service")
    assert program_named("demo_tick_service").marker == "demo_tick_service.py"


def test_the_services_take_their_names_from_the_registry():
    # Both wake the restore service through restart.py, the one place that names it for them.
    assert (keep_alive.SERVICE, keep_alive.LOG_NAME, restart.RESTORE_SERVICE) == \
        (KEEP_ALIVE.name, KEEP_ALIVE.log_name, AUTO_RESTORE.name)
    assert (auto_backup.SERVICE, auto_backup.LOG_NAME) == (AUTO_BACKUP.name, AUTO_BACKUP.log_name)
    assert (auto_restore.SERVICE, auto_restore.LOG_NAME, auto_restore.BACKUP_SERVICE) == \
        (AUTO_RESTORE.name, AUTO_RESTORE.log_name, AUTO_BACKUP.name)


def test_no_module_but_the_registry_spells_a_service_or_a_file_name():
    names = [service.name for service in SERVICES] + [service.log_name for service in SERVICES]
    names += [DEMO.log_name, pid_file_path("", DEMO.name).name, demo_url_path("").name]
    found = [(path.name, name) for path in sorted(PACKAGE_DIR.glob("*.py")) if path.name != "services.py"
             for name in names if name in path.read_text()]
    assert found == []


def test_the_status_screen_loads_neither_the_launcher_nor_any_service():
    loaded = subprocess.run([sys.executable, "-c", "import sys, sleepguard.status; print(' '.join(sys.modules))"],
                            cwd=PROJECT_DIR, capture_output=True, text=True, check=True).stdout.split()
    for module in ("launcher", "keep_alive", "auto_backup", "auto_restore"):
        assert f"sleepguard.{module}" not in loaded
    assert "sleepguard.services" in loaded and "sleepguard.processes" in loaded


def test_process_handling_has_one_home():
    assert not (PACKAGE_DIR / "pidfile.py").exists(), "processes.py replaced it; no shim"
