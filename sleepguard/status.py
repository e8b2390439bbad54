"""The status screen: is the shop's data protected right now, and if not, why.

collect_status() gathers the facts as a JSON-ready dict (for `backup_status.py --json`) with the
verdict that verdict.judge gives them; format_status() turns it into one screen: the verdict,
its reasons each with its fix, then the details. It talks about the back end the services watch.
Neither ever holds the API token or a PIN: restored users are named by e-mail only.
"""

import dataclasses
import os
import time
from datetime import datetime, timezone
from pathlib import Path

from .client import BackendClient
from .exceptions import BackendError, PinFileError
from .offsite import is_configured
from .offsite_queue import offsite_status
from .pins import pending_pins, restored_pins_path
from .processes import check_service, running_demo_url
from .restore_lock import running_restore
from .services import AUTO_BACKUP, AUTO_RESTORE, KEEP_ALIVE, SERVICES, log_path
from .snapshot import parse_utc_time
from .state import as_json, last_figures, read_state
from .store import BackupStore
from .urls import same_backend, without_credentials
from .verdict import PROTECTED, judge
from .wording import reason_sentence, status_screen

STALE_AFTER_INTERVALS = 3
HEALTH_CONNECT_TIMEOUT = 3.0
HEALTH_READ_TIMEOUT = 5.0


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z") if moment else None


def _scrub(value, secret: str):
    """Replace the secret wherever it appears: summaries come from other processes' state files."""
    if not secret:
        return value
    if isinstance(value, str):
        return value.replace(secret, "***")
    if isinstance(value, dict):
        return {key: _scrub(item, secret) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, secret) for item in value]
    return value


def _service_status(data_dir: Path, service, now: float, state) -> dict:
    """One service: verified process state plus what its last iteration did (state as read_state gave it)."""
    process = check_service(data_dir, service.name)
    running = process.state == "running"
    return {
        "service": service.name,
        "state": process.state,
        "pid": process.pid,
        "reason": process.reason,
        "started_at": _iso(datetime.fromtimestamp(process.started_at, timezone.utc)) if running else None,
        "uptime_seconds": round(now - process.started_at, 1) if running else None,
        "log_file": str(log_path(data_dir, service)),
        "last_run_at": state.last_run_at if state else None,
        "last_outcome": state.last_outcome if state else None,
        "last_summary": state.last_summary if state else None,
        "last_figures": as_json(state.last_figures) if state else {},
        "iterations": state.iterations if state else None,
        "failures": state.failures if state else None,
        "consecutive_failures": state.consecutive_failures if state else None,
    }


def _watched_url(settings, data_dir: Path, restore_state) -> tuple[str, str | None]:
    """(URL, where it comes from) of the back end the services watch: what the running restore service
    recorded when it differs from the settings (a demo started beside another BACKEND_URL), else the settings'."""
    url, source = settings.backend_url, "BACKEND_URL"
    demo_url = running_demo_url(data_dir)
    if not url or url == demo_url:
        url, source = demo_url or "", "demo"
    recorded = last_figures(restore_state, AUTO_RESTORE.name).backend_url
    running = check_service(data_dir, AUTO_RESTORE.name).state == "running"
    if running and recorded and not same_backend(recorded, url):
        return recorded, "demo" if demo_url and same_backend(demo_url, recorded) else "services"
    return url, source if url else None


def _backend_status(settings, data_dir: Path, states: dict, health=None) -> dict:
    """The back end the services watch: which URL, whether one quick health call gets an answer, the last restart.

    health=(body, latency, error) is an answer the caller just had (the keep-alive's ping): no call then.
    """
    url, source = _watched_url(settings, data_dir, states[AUTO_RESTORE.name])
    pinged = last_figures(states[KEEP_ALIVE.name], KEEP_ALIVE.name)
    backups = last_figures(states[AUTO_BACKUP.name], AUTO_BACKUP.name)
    # The keep-alive sees a restart as a failure then an answer, the backup service as a trigger count reset.
    restarts = [pinged.last_restart_seen_at, backups.last_restart_seen_at]
    settings_url = without_credentials(settings.backend_url)
    backend = {"configured": bool(url), "url": without_credentials(url) if url else "", "source": source,
               "settings_url": settings_url if settings_url and not same_backend(settings_url, url) else None,
               "mode": settings.backend_mode, "reachable": None, "latency_seconds": None, "health": None,
               "error": None, "last_restart_seen": max(filter(None, restarts), default=None),
               "keep_alive_latency_seconds": pinged.latency_seconds}
    if not url:
        return backend
    if health is not None:
        body, latency, error = health
        if error:
            backend.update(reachable=False, error=error)
        else:
            backend.update(reachable=True, latency_seconds=round(latency, 3), health=(body or {}).get("status"))
        return backend
    # One try, short timeouts: a status screen must not hang on a sleeping host.
    quick = dataclasses.replace(settings, backend_url=url, retries=0,
                                connect_timeout=min(settings.connect_timeout, HEALTH_CONNECT_TIMEOUT),
                                read_timeout=min(settings.read_timeout, HEALTH_READ_TIMEOUT))
    try:
        with BackendClient(quick) as client:
            body, latency = client.health()
    except BackendError as exc:
        backend.update(reachable=False, error=str(exc))
    else:
        backend.update(reachable=True, latency_seconds=round(latency, 3), health=body.get("status"))
    return backend


def _folder_size(folder: Path) -> tuple[int, int]:
    """(files, bytes) of the visible files in a folder; hidden ones are writes in progress."""
    files = size = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and not entry.name.startswith("."):
                    files += 1
                    size += entry.stat(follow_symlinks=False).st_size
    except FileNotFoundError:
        pass
    return files, size


def _backup_status(settings, now: datetime) -> tuple[dict | None, dict, list]:
    """The last good backup (None if there is none), the history's size, and the suspects held."""
    store = BackupStore(settings)
    files, size = _folder_size(store.history_dir)
    suspect_files, suspect_bytes = _folder_size(store.suspect_dir)
    history = {"folder": str(store.history_dir), "files": files, "bytes": size,
               "suspect_files": suspect_files, "suspect_bytes": suspect_bytes}
    suspects = [{"created_at": _iso(entry.created_at), "counts": entry.counts, "file": entry.path.name,
                 "verdict": entry.verdict} for entry in store.held_suspects()]
    good = store.latest_good_summary()
    if good is None:
        return None, history, suspects
    path = good.path
    created = parse_utc_time(good.meta.get("created_at"))
    # An unchanged read only touches data_backup.json: its mtime says when the data was last verified.
    verified = created
    if path == store.latest_path:
        touched = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        verified = max(created, touched) if created else touched
    age = (now - verified).total_seconds() if verified else None
    limit = STALE_AFTER_INTERVALS * settings.backup_interval
    legacy = good.meta.get("mode") == "legacy"
    backup = {"path": str(path), "file": path.name, "created_at": _iso(created), "verified_at": _iso(verified),
              "age_seconds": round(age, 1) if age is not None else None, "fresh": age is not None and age <= limit,
              "fresh_limit_seconds": limit, "counts": good.counts, "checksum_ok": not legacy, "legacy": legacy,
              "latest_file_ok": path == store.latest_path}
    return backup, history, suspects


def _last_restore(restore_state) -> dict:
    """What the restore service last did, from the figures its iterations record."""
    figures = last_figures(restore_state, AUTO_RESTORE.name)
    return {"at": figures.last_restore_at, "what": figures.last_restore_summary,
            "complete": figures.last_restore_complete, "users_needing_pin": figures.users_needing_pin or []}


def _last_backup(backup_state) -> dict:
    """What the backup service's last backup was, for the verdict: its kind and why."""
    figures = last_figures(backup_state, AUTO_BACKUP.name)
    failing = figures.last_backup_kind == "failed"
    return {"kind": figures.last_backup_kind, "at": figures.last_backup_at,
            "why": figures.status_error if failing and figures.status_error else figures.last_backup_summary,
            "failures_in_a_row": 1 if failing else 0}


def _last_check(restore_state) -> dict:
    """What the restore service's latest check of the back end found, in the verdict's terms."""
    figures = last_figures(restore_state, AUTO_RESTORE.name)
    verdict, outcome = figures.last_verdict, restore_state.last_outcome if restore_state else None
    if verdict == "wipe" and outcome == "restored":
        verdict = "restored"  # the verifying read found every record of the backup back
    elif verdict == "wipe" and figures.last_restore_complete is False and outcome in ("restore_failed",
                                                                                      "backing_off"):
        verdict = "restore_failed"
    return {"verdict": verdict, "at": figures.last_check_at, "reason": figures.last_reason,
            "missing_users": figures.missing_users, "missing_customers": figures.missing_customers,
            "emptied_owners": figures.emptied_owners}


def _pins(settings, data_dir: Path, restore_state) -> dict:
    """The new PINs waiting to be handed out, and why the PIN file was not used for them, if it was not."""
    try:
        waiting, problem = pending_pins(data_dir), None
    except PinFileError as exc:
        waiting, problem = [], f"{exc}"
    refused = last_figures(restore_state, AUTO_RESTORE.name).pins_file_problem
    # The PIN file's trouble matters while users wait for the new PINs it caused; handed out, it is done.
    return {"pins_to_hand_out": waiting, "pins_problem": problem,
            "pins_file_problem": refused if waiting and refused else None,
            "pins_path": str(restored_pins_path(data_dir)), "pins_file": str(settings.pins_file)}


def _restore(data_dir: Path, last_restore: dict) -> dict:
    """A restore running now, any process's (the service's or restore_simple.py), with how far it got; else how
    the last one ended."""
    running = running_restore(data_dir)
    if running is not None:
        return {key: running[key] for key in ("running", "users_done", "users_total", "pid")}
    return {"running": False, "complete": last_restore["complete"], "what": last_restore["what"]}


def collect_status(settings, health=None) -> dict:
    """Gather the whole status as a JSON-ready dict with its verdict; reads files and makes one health call
    (none when health, the caller's own answer, is given)."""
    data_dir = Path(settings.data_dir)
    now = datetime.now(timezone.utc)
    states = {service.name: read_state(data_dir, service.name) for service in SERVICES}
    services = [_service_status(data_dir, service, time.time(), states[service.name]) for service in SERVICES]
    backup, history, suspects = _backup_status(settings, now)
    last_restore = _last_restore(states[AUTO_RESTORE.name])
    status = {
        "checked_at": _iso(now),
        "data_dir": str(data_dir),
        "backend": _backend_status(settings, data_dir, states, health),
        "services": services,
        "last_good_backup": backup,
        "last_backup": _last_backup(states[AUTO_BACKUP.name]),
        "last_check": _last_check(states[AUTO_RESTORE.name]),
        "restore": _restore(data_dir, last_restore),
        "history": history,
        "suspects_held": suspects,
        "last_restore": last_restore,
        **_pins(settings, data_dir, states[AUTO_RESTORE.name]),
        # Read from local files only: the uploader's record and its queue (no S3 client here).
        "offsite": offsite_status(settings) if is_configured(settings) else None,
    }
    verdict = judge(status)
    status["verdict"] = verdict.to_json()
    status["warnings"] = [reason_sentence(reason) for reason in verdict.reasons]
    status["protected"] = verdict.code == PROTECTED
    return _scrub(status, settings.api_token)


def format_status(status: dict) -> str:
    """The status as one screen of text: the verdict, its reasons with their fixes, then the details."""
    return status_screen(status)
