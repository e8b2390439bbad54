"""What each service last did, as typed records: written by the service through the runner, read by the status screen.

A service's run_once returns an Iteration whose figures are that service's dataclass below; the
runner adds its common part (ServiceState) and writes DATA_DIR/<service>.state.json. read_state
turns the file back into the same types, so a field renamed on one side breaks the other at once.
Files written by an older version are read as far as they go: unknown keys are dropped, missing
ones take their defaults.
"""

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .services import AUTO_BACKUP, AUTO_RESTORE, KEEP_ALIVE, state_file_path
from .snapshot import parse_utc_time

log = logging.getLogger(__name__)

# A field that moves on every round even when nothing happened (a counter, a time, a latency): a change in it
# alone is no news, so the runner writes it on its coarse clock instead of every round (material() leaves it out).
TICKS = {"ticks": True}
TOUCH_SLACK_SECONDS = 1.0


def ticking(default=None):
    """A dataclass field whose change alone is no news (see TICKS)."""
    return field(default=default, metadata=TICKS)


@dataclass
class KeepAliveFigures:
    """The keep-alive's pings and the restarts it saw."""

    latency_seconds: float | None = ticking()
    slow: bool = False
    consecutive_failures: int = 0
    last_ok_at: str | None = ticking()
    last_restart_seen_at: str | None = None
    wakes_sent: int = 0
    pings_ok: int = ticking(0)
    pings_failed: int = 0
    last_error: str | None = None
    # The verdict this round computed (voice.py), its reasons' kinds, and the heartbeat's last action.
    verdict: str | None = None
    verdict_reasons: list = field(default_factory=list)
    heartbeat: str | None = None
    heartbeats_skipped: int = 0


@dataclass
class BackupFigures:
    """The backup service's backups by kind, the app's trigger counter, the restarts it saw."""

    backups_taken: int = ticking(0)
    good_count: int = 0
    unchanged_count: int = ticking(0)
    suspect_count: int = 0
    failed_count: int = 0
    last_backup_at: str | None = ticking()
    last_backup_kind: str | None = None
    last_backup_summary: str | None = ticking()
    last_good_backup_at: str | None = ticking()  # data_backup.json's mtime says it at once
    last_suspect_at: str | None = None
    trigger_count: int | None = None
    last_trigger_at: str | None = None
    status_error: str | None = None
    restarts_seen: int = 0
    last_restart_seen_at: str | None = None
    wakes_sent: int = 0


@dataclass
class RestoreFigures:
    """The restore service's checks, restores and back-off."""

    last_check_at: str | None = ticking()
    last_verdict: str | None = None
    unknown_reads: int = 0
    wipes_seen: int = 0
    large_drops_held: int = 0
    restores: int = 0
    failed_restores: int = 0
    restore_failures_in_a_row: int = 0
    checks_to_skip: int = 0
    last_restore_at: str | None = None
    last_restore_complete: bool | None = None
    last_restore_summary: str | None = None
    users_needing_pin: list = field(default_factory=list)
    fresh_backup_asked: int = 0
    # What the last check found, for the verdict: its reason and what the backup's data lacked on the back end.
    last_reason: str | None = None
    missing_users: list = field(default_factory=list)
    missing_customers: list = field(default_factory=list)
    emptied_owners: list = field(default_factory=list)
    foreign_held: int = 0
    backend_url: str | None = None  # the back end this service watches, without credentials
    pins_file_problem: str | None = None  # why the last restore did not take PINs from the PIN file


# The figures type of each service; any other service (a test's) keeps its figures as a plain dict.
FIGURES_OF = {
    KEEP_ALIVE.name: KeepAliveFigures,
    AUTO_BACKUP.name: BackupFigures,
    AUTO_RESTORE.name: RestoreFigures,
}


@dataclass
class Iteration:
    """What one run_once did: an outcome word, a one-line summary, and the service's figures."""

    outcome: str
    summary: str
    figures: object = field(default_factory=dict)  # the service's figures dataclass (a dict for others)
    warn: bool = False  # the runner logs the summary as a warning: something the owner may have to look at


@dataclass
class ServiceState:
    """The runner's common part of a state file, holding the service's figures as last_figures."""

    service: str = ""
    pid: int | None = None
    started_at: str | None = None
    last_run_at: str | None = ticking()  # read_state takes the file's mtime when later
    last_duration: float | None = ticking()
    last_outcome: str | None = ticking()  # every outcome that matters moves a figure or a count
    last_summary: str | None = ticking()
    last_figures: object = field(default_factory=dict)
    iterations: int = ticking(0)
    failures: int = 0
    consecutive_failures: int = 0



def _known(cls, data):
    """An instance of cls from the keys of data it knows; the rest take their defaults."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{key: value for key, value in data.items() if key in names})


def figures_of(service: str, data) -> object:
    """The figures of a service from their JSON form, typed when the service has a type."""
    kind = FIGURES_OF.get(service)
    data = data if isinstance(data, dict) else {}
    return _known(kind, data) if kind else data


def last_figures(state: "ServiceState | None", service: str) -> object:
    """The figures of a state read back, or the service's empty figures when it has written none yet."""
    return state.last_figures if state is not None else figures_of(service, None)


def state_from_json(service: str, data: dict) -> ServiceState:
    """A ServiceState from a state file's JSON object, tolerating old or partial files."""
    state = _known(ServiceState, data)
    state.last_figures = figures_of(service, data.get("last_figures"))
    return state


def as_json(record) -> dict:
    """A state or figures record as the JSON-ready dict the state file holds (figures that are not JSON as text)."""
    data = dataclasses.asdict(record) if dataclasses.is_dataclass(record) else dict(record)
    return json.loads(json.dumps(data, default=str))


def material(state: ServiceState) -> dict:
    """What of a state is news when it changes: everything but its ticking fields (TICKS), figures included."""
    def news(record):
        if not dataclasses.is_dataclass(record):
            return json.loads(json.dumps(record, default=str))
        return {f.name: news(getattr(record, f.name)) for f in dataclasses.fields(record) if not f.metadata.get("ticks")}
    return news(state)


def _iso(moment: datetime) -> str:
    """A UTC time in utc_now_iso's form."""
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def read_state(data_dir: Path, service: str) -> ServiceState | None:
    """Read a service's state file for the status screen; None when missing or garbage.

    A round that changed nothing only touches the file, so its mtime is the last run when it is later.
    """
    path = state_file_path(data_dir, service)
    try:
        stat = path.stat()
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("state file %s is unreadable: %s", path, exc)
        return None
    if not isinstance(data, dict):
        log.warning("state file %s is not a JSON object", path)
        return None
    state = state_from_json(service, data)
    touched = datetime.fromtimestamp(stat.st_mtime, timezone.utc)
    recorded = parse_utc_time(state.last_run_at)
    # Written files have an mtime just past their run; a touch is a later round (a second of slack for the write).
    if recorded is not None and touched > recorded + timedelta(seconds=(state.last_duration or 0) + TOUCH_SLACK_SECONDS):
        state.last_run_at = _iso(touched)
    return state


# What the last restore did is a fact about the shop, not about one run of the service: a restart keeps it.
LAST_RESTORE_FIELDS = ("last_restore_at", "last_restore_complete", "last_restore_summary", "users_needing_pin")


def restore_figures_at_start(data_dir: Path, backend_url: str | None) -> RestoreFigures:
    """New restore figures, with what the last restore did when the previous run watched this same back end."""
    figures = RestoreFigures(backend_url=backend_url)
    before = read_state(data_dir, AUTO_RESTORE.name)
    if before is not None and before.last_figures.backend_url == backend_url:
        for name in LAST_RESTORE_FIELDS:
            setattr(figures, name, getattr(before.last_figures, name))
    return figures
