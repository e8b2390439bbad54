"""The registry of what sleepguard runs: each service's name, command and files, and the demo back end's.

A program's name is the file stem of its command (keep_alive_super_aggressive.py) or, for the
demo back end, the stem of its files; every file a program keeps in DATA_DIR is named here and
nowhere else. This module only names things: it imports no service, so the status screen and
the tests can ask it without loading the services themselves.
"""

from dataclasses import dataclass
from pathlib import Path

from .settings import PROJECT_DIR


@dataclass(frozen=True)
class Program:
    """Something sleepguard runs as a process of one DATA_DIR: its name, and the log its output goes to."""

    name: str
    log_name: str
    title: str  # what the owner calls it on the status screen and in alerts

    @property
    def marker(self) -> str:
        """The command-line argument that tells this program's processes from any other: its command file."""
        return f"{self.name}.py"


@dataclass(frozen=True)
class Service(Program):
    """One of the three long-running services, started from its top-level command."""

    @property
    def command(self) -> Path:
        """The top-level command that runs the service."""
        return PROJECT_DIR / self.marker


@dataclass(frozen=True)
class DemoBackend(Program):
    """The demo back end, run as `python -m module`; the launcher writes its PID and URL files for it."""

    module: str

    @property
    def marker(self) -> str:
        return self.module


KEEP_ALIVE = Service("keep_alive_super_aggressive", "keep_alive_super_aggressive.log", "keep-alive")
AUTO_BACKUP = Service("auto_backup_super_aggressive", "auto_backup_super_aggressive.log", "auto-backup")
AUTO_RESTORE = Service("auto_restore_service", "auto_restore.log", "auto-restore")
# In the order they start and are shown.
SERVICES = (KEEP_ALIVE, AUTO_BACKUP, AUTO_RESTORE)
DEMO = DemoBackend("demo_backend", "demo_backend.log", "demo back end", "sleepguard.demo_backend")


def program_named(name: str) -> Program:
    """The registered program of that name; any other name is a stand-in known by its command file (tests)."""
    for program in (*SERVICES, DEMO):
        if program.name == name:
            return program
    return Program(name, f"{name}.log", name)


def pid_file_path(data_dir: Path, name: str) -> Path:
    """Where the PID file of a program lives."""
    return Path(data_dir) / f"{name}.pid"


def state_file_path(data_dir: Path, name: str) -> Path:
    """Where a service keeps the outcome of its last iteration."""
    return Path(data_dir) / f"{name}.state.json"


def log_path(data_dir: Path, program: Program) -> Path:
    """Where a program's log (and its stdout/stderr) goes."""
    return Path(data_dir) / program.log_name


def demo_url_path(data_dir: Path) -> Path:
    """Where the launcher notes the URL of the demo back end it started."""
    return Path(data_dir) / f"{DEMO.name}.url"


def demo_folder_path(data_dir: Path) -> Path:
    """The demo's own folder inside DATA_DIR: its back end's files and the DATA_DIR of the services in demo mode.

    Kept apart so demo backups, logs and PINs never mix with a real shop's in DATA_DIR.
    """
    return Path(data_dir) / "demo"


def demo_token_path(folder: Path) -> Path:
    """Where the launcher keeps the demo's own random admin token (0600), for the README's sleep call."""
    return Path(folder) / f"{DEMO.name}.token"


def restore_progress_path(data_dir: Path) -> Path:
    """Where a running restore says how far it got (users done of total, its PID); gone when none runs."""
    return Path(data_dir) / "restore_progress.json"

