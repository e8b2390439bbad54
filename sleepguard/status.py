"""The status screen: is the shop's data protected right now, and if not, why.

collect_status() gathers everything as a JSON-ready dict (for `backup_status.py --json`),
format_status() turns it into one screen. Protected means: all three services run and the
last good backup was verified within three BACKUP_INTERVALs. Neither ever holds the API
token or a PIN: restored users are named by e-mail only.
"""

import dataclasses
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .wording import size_text
from .client import BackendClient
from .exceptions import BackendError, PinFileError
from .offsite import is_configured
from .offsite_queue import offsite_status
from .pins import RESTORED_PINS_NAME, pending_pins
from .processes import check_service, running_demo_url
from .restore_lock import running_restore
from .services import AUTO_BACKUP, AUTO_RESTORE, KEEP_ALIVE, SERVICES, log_path
from .snapshot import parse_utc_time
from .state import as_json, last_figures, read_state
from .store import BackupStore

STALE_AFTER_INTERVALS = 3
HEALTH_CONNECT_TIMEOUT = 3.0
HEALTH_READ_TIMEOUT = 5.0


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z") if moment else None


def _shown_url(url: str) -> str:
    """The URL without any user:password part, which may hold a secret."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


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


def _backend_status(settings, data_dir: Path, states: dict, health=None) -> dict:
    """The back end: which URL, whether one quick health call gets an answer, the last restart seen.

    health=(body, latency, error) is an answer the caller just had (the keep-alive's ping): no call then.
    """
    url, source = settings.backend_url, "BACKEND_URL"
    demo_url = running_demo_url(data_dir)
    if not url or url == demo_url:
        url, source = demo_url or "", "demo"
    pinged = last_figures(states[KEEP_ALIVE.name], KEEP_ALIVE.name)
    backups = last_figures(states[AUTO_BACKUP.name], AUTO_BACKUP.name)
    # The keep-alive sees a restart as a failure then an answer, the backup service as a trigger count reset.
    restarts = [pinged.last_restart_seen_at, backups.last_restart_seen_at]
    backend = {"configured": bool(url), "url": _shown_url(url) if url else "", "source": source if url else None,
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
    suspects = [{"created_at": _iso(entry.created_at), "counts": entry.counts, "file": entry.path.name}
                for entry in store.held_suspects()]
    good = store.latest_good_backup()
    if good is None:
        return None, history, suspects
    path = Path(good.meta["path"])
    created = parse_utc_time(good.meta.get("created_at"))
    # An unchanged read only touches data_backup.json: its mtime says when the data was last verified.
    verified = created
    if path == store.latest_path:
        touched = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        verified = max(created, touched) if created else touched
    age = (now - verified).total_seconds() if verified else None
    limit = STALE_AFTER_INTERVALS * settings.backup_interval
    backup = {"path": str(path), "file": path.name, "created_at": _iso(created), "verified_at": _iso(verified),
              "age_seconds": round(age, 1) if age is not None else None, "fresh": age is not None and age <= limit,
              "fresh_limit_seconds": limit, "counts": good.counts(), "checksum_ok": True,
              "latest_file_ok": path == store.latest_path}
    return backup, history, suspects


def _last_restore(restore_state) -> dict:
    """What the restore service last did, from the figures its iterations record."""
    figures = last_figures(restore_state, AUTO_RESTORE.name)
    return {"at": figures.last_restore_at, "what": figures.last_restore_summary,
            "complete": figures.last_restore_complete, "users_needing_pin": figures.users_needing_pin or []}


def _restore_running(data_dir: Path) -> dict:
    """{"running": False}, or the figures of the restore running now (users done of total, its PID)."""
    running = running_restore(data_dir)
    if running is None:
        return {"running": False}
    return {key: running[key] for key in ("running", "users_done", "users_total", "pid")}


def _warnings(status: dict) -> list[str]:
    """Everything the owner should act on, most urgent first."""
    warnings = []
    backup = status["last_good_backup"]
    if backup is None:
        warnings.append("no backup yet: nothing is protected")
    elif not backup["fresh"]:
        warnings.append(f"the last good backup was verified {_ago(backup['age_seconds'])} ago, more than "
                        f"{STALE_AFTER_INTERVALS} × BACKUP_INTERVAL ({_ago(backup['fresh_limit_seconds'])}): "
                        "see the backup service's log")
    if backup is not None and not backup["latest_file_ok"]:
        warnings.append(f"data_backup.json is missing or fails its checksum; the newest good copy is {backup['file']} "
                        "(see manual_backup.py --list)")
    for service in status["services"]:
        if service["state"] == "stale":
            warnings.append(f"{service['service']} is not running (stale PID file: {service['reason']})")
        elif service["state"] != "running":
            warnings.append(f"{service['service']} is not running")
    if status["suspects_held"]:
        newest = status["suspects_held"][0]
        warnings.append(f"{len(status['suspects_held'])} suspect read(s) held aside since the last good backup "
                        f"(newest {newest['file']}): if the owner deleted that data on purpose, run "
                        "python3 manual_backup.py --accept-shrink")
    if status["pins_to_hand_out"]:
        warnings.append(f"new PINs to hand out to {', '.join(status['pins_to_hand_out'])} "
                        f"(in {RESTORED_PINS_NAME}, readable by you only)")
    if status["pins_problem"]:
        warnings.append(status["pins_problem"])
    backend = status["backend"]
    if not backend["configured"]:
        warnings.append("BACKEND_URL is not set: put it in .env, or try python3 start_all_super_services.py --demo")
    elif backend["reachable"] is False:
        warnings.append(f"the back end did not answer: {backend['error']}")
    return warnings


def collect_status(settings, health=None) -> dict:
    """Gather the whole status as a JSON-ready dict; reads files and makes one health call (none given health)."""
    data_dir = Path(settings.data_dir)
    now = datetime.now(timezone.utc)
    states = {service.name: read_state(data_dir, service.name) for service in SERVICES}
    services = [_service_status(data_dir, service, time.time(), states[service.name]) for service in SERVICES]
    backup, history, suspects = _backup_status(settings, now)
    try:
        pins, pins_problem = pending_pins(data_dir), None
    except PinFileError as exc:
        pins, pins_problem = [], f"cannot read the restored PINs: {exc}"
    status = {
        "checked_at": _iso(now),
        "data_dir": str(data_dir),
        "backend": _backend_status(settings, data_dir, states, health),
        "services": services,
        "last_good_backup": backup,
        "history": history,
        "suspects_held": suspects,
        "last_restore": _last_restore(states[AUTO_RESTORE.name]),
        # A restore running now, any process's (the service's or restore_simple.py): how far it got.
        "restore": _restore_running(data_dir),
        "pins_to_hand_out": pins,
        "pins_problem": pins_problem,
        # Read from local files only: the uploader's record and its queue (no S3 client here).
        "offsite": offsite_status(settings) if is_configured(settings) else None,
    }
    status["warnings"] = _warnings(status)
    status["protected"] = (all(service["state"] == "running" for service in services)
                           and backup is not None and backup["fresh"])
    return _scrub(status, settings.api_token)


# --- the screen ---

def _ago(seconds) -> str:
    """A duration in words a person reads at a glance: 42 s, 5 min, 3 h 4 min, 2 d 3 h."""
    if seconds is None:
        return "?"
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 2:
        return f"{minutes} min"
    if days < 2:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"


def _when(text, now: datetime) -> str:
    """An ISO time from a file, as 'YYYY-MM-DD HH:MM:SS UTC (42 s ago)'."""
    moment = parse_utc_time(text)
    if moment is None:
        return "never"
    return f"{moment.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC ({_ago((now - moment).total_seconds())} ago)"


def _counts_text(counts) -> str:
    counts = counts or {}
    return (f"{counts.get('users', '?')} users, {counts.get('customers', '?')} customers, "
            f"{counts.get('orders', '?')} orders")


def _backend_lines(backend: dict, now: datetime) -> list[str]:
    if not backend["configured"]:
        return ["back end     not configured (BACKEND_URL is not set)"]
    where = backend["url"] + (" (demo)" if backend["source"] == "demo" else "")
    if backend["reachable"]:
        answer = f"reachable, {backend['health']}, {backend['latency_seconds'] * 1000:.0f} ms"
    else:
        answer = f"NOT reachable: {backend['error']}"
    lines = [f"back end     {where}  {answer}"]
    if backend["last_restart_seen"]:
        lines.append(f"             last restart seen {_when(backend['last_restart_seen'], now)}")
    return lines


def _service_lines(services: list[dict], now: datetime) -> list[str]:
    width = max(len(service["service"]) for service in services)
    lines = ["services"]
    for service in services:
        if service["state"] == "running":
            state = f"running  PID {service['pid']}, up {_ago(service['uptime_seconds'])}"
        elif service["state"] == "stale":
            state = f"STALE PID file: {service['reason']}"
        else:
            state = "STOPPED"
        lines.append(f"  {service['service'].ljust(width)}  {state}")
        if service["last_run_at"]:
            lines.append(f"  {'':{width}}  last run {_when(service['last_run_at'], now)}: "
                         f"{service['last_outcome']}, {service['last_summary']}")
    return lines


def _backup_lines(status: dict, now: datetime) -> list[str]:
    backup, history = status["last_good_backup"], status["history"]
    if backup is None:
        lines = ["last backup  no backup yet"]
    else:
        lines = [f"last backup  {backup['file']}: {_counts_text(backup['counts'])}, checksum ok",
                 f"             created {_when(backup['created_at'], now)}, "
                 f"verified {_when(backup['verified_at'], now)}"]
    lines.append(f"history      {history['files']} files, {size_text(history['bytes'])} in {history['folder']}"
                 + (f"; {history['suspect_files']} suspect reads kept aside" if history["suspect_files"] else ""))
    running = status.get("restore") or {}
    if running.get("running"):
        lines.append(f"restoring    {running['users_done']} of {running['users_total']} users (PID {running['pid']})")
    restore = status["last_restore"]
    if restore["at"] or restore["what"]:
        lines.append(f"last restore {_when(restore['at'], now)}: {restore['what']}")
    else:
        lines.append("last restore none recorded")
    return lines


def format_status(status: dict) -> str:
    """The status as one screen of text."""
    now = parse_utc_time(status["checked_at"]) or datetime.now(timezone.utc)
    lines = [f"sleepguard status at {now:%Y-%m-%d %H:%M:%S} UTC, DATA_DIR {status['data_dir']}"]
    lines += _backend_lines(status["backend"], now)
    lines += _service_lines(status["services"], now)
    lines += _backup_lines(status, now)
    if status.get("offsite"):
        lines.append(f"{status['offsite']['text']} (recipient {status['offsite']['recipient_fingerprint']})")
    if status["warnings"]:
        lines.append("warnings")
        lines += [f"  ! {warning}" for warning in status["warnings"]]
    lines.append("PROTECTED" if status["protected"] else "NOT PROTECTED")
    return "\n".join(lines)
