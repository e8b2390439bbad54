"""Settings: environment first, then .env beside the commands, validated into one object."""

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlparse

from dotenv import dotenv_values

from .exceptions import SettingsError

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_ENV_FILE = PROJECT_DIR / ".env"


# Longer waits overflow the socket and select() timeouts (a traceback instead of a wait): a week is plenty.
MAX_SECONDS = 7 * 24 * 3600


def _seconds(name, raw):
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None or not 0 < value <= MAX_SECONDS:
        raise SettingsError(f"{name} must be a number of seconds above 0 and at most {MAX_SECONDS} (a week; "
                            f"fractions allowed), got {raw!r}")
    return value


def _count(name, raw, minimum, maximum=None):
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        limits = f"of at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise SettingsError(f"{name} must be a whole number {limits}, got {raw!r}")
    return value


def _fraction(name, raw):
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None or not 0 < value <= 1:
        raise SettingsError(f"{name} must be a fraction above 0 and at most 1, got {raw!r}")
    return value


def _url(name, raw):
    if raw == "":
        return ""
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SettingsError(f"{name} must be an http:// or https:// URL, got {raw!r}")
    return raw.rstrip("/")


def _choice(choices):
    def parse(name, raw):
        if raw not in choices:
            raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
        return raw
    return parse


def _text(name, raw):
    return raw


def _path(name, raw):
    if raw.strip() == "":
        raise SettingsError(f"{name} must be a folder or file path, got an empty value")
    return Path(raw).expanduser()


def _folder(name, raw):
    path = _path(name, raw)
    # Checked here, so every command refuses it in one line instead of failing deep inside with a traceback.
    if path.exists() and not path.is_dir():
        raise SettingsError(f"{name} must be a folder, but {path} is a file")
    return path


def _alert_urls(name, raw):
    # A URL can carry a token, so a bad one is named by its place in the list, never shown.
    urls = [url for url in re.split(r"[\s,]+", raw) if url]
    for place, url in enumerate(urls, 1):
        if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$", url):
            raise SettingsError(f"{name} entry {place} of {len(urls)} is not an apprise URL (service://...), "
                                "e.g. ntfy://my-topic or mailto://user:app-password@gmail.com")
    return " ".join(urls)


def _config_file(name, raw):
    if raw == "":
        return ""
    path = Path(raw).expanduser()
    if not path.is_file():
        raise SettingsError(f"{name} must be an apprise config file, but {path} is not a file")
    return str(path)


# More retries of a host that is down would hold a command for hours (urllib3 waits up to 120 s each).
MAX_RETRIES = 10

# name: (default, parser, what it is) — the one list .env.example and the README follow.
SETTINGS = {
    "BACKEND_URL": ("", _url, "base URL of the BABS10 back end, e.g. https://babs10.onrender.com"),
    "BACKEND_MODE": ("babs10", _choice(("babs10", "snapshot")), "babs10 (public API) or snapshot (admin snapshot URL, lossless)"),
    "SNAPSHOT_URL": ("", _url, "snapshot mode: URL answering GET/PUT of the whole state (default BACKEND_URL/api/admin/snapshot)"),
    "API_TOKEN": ("", _text, "snapshot mode: bearer token of SNAPSHOT_URL (secret, never logged)"),
    "DATA_DIR": (str(PROJECT_DIR), _folder, "folder for backups, logs, PID and state files"),
    "PINS_FILE": ("", _text, "API mode: the owner's PIN file {email: PIN}, must be 0600 (default DATA_DIR/pins.json)"),
    "KEEP_ALIVE_INTERVAL": ("120", _seconds, "seconds between keep-alive pings"),
    "BACKUP_INTERVAL": ("120", _seconds, "seconds between backups"),
    "TRIGGER_POLL_INTERVAL": ("15", _seconds, "seconds between looks at the app's backup trigger"),
    "RESTORE_CHECK_INTERVAL": ("60", _seconds, "seconds between wipe checks"),
    "BACKUP_WORKERS": ("8", lambda n, r: _count(n, r, 1), "parallel requests while reading or restoring customers"),
    "RESTORE_WORKERS": ("8", lambda n, r: _count(n, r, 1), "parallel requests while restoring"),
    "CONNECT_TIMEOUT": ("10", _seconds, "seconds to wait for a connection"),
    "READ_TIMEOUT": ("90", _seconds, "seconds to wait for an answer (must outlast a cold start)"),
    "RETRIES": ("3", lambda n, r: _count(n, r, 0, MAX_RETRIES), "retries of a failed idempotent request"),
    "RETRY_BACKOFF": ("0.5", _seconds, "first pause between retries, doubling each time"),
    "MAX_RESPONSE_BYTES": ("52428800", lambda n, r: _count(n, r, 1024), "largest answer accepted, in bytes"),
    "KEEP_LAST": ("50", lambda n, r: _count(n, r, 1), "history: keep every change among the newest this many"),
    "KEEP_HOURLY": ("48", lambda n, r: _count(n, r, 0), "history: keep one backup per hour for this many hours"),
    "KEEP_DAILY": ("30", lambda n, r: _count(n, r, 0), "history: keep one backup per day for this many days"),
    "LARGE_DROP_FRACTION": ("0.5", _fraction, "a read that lost more than this share of customers is held as suspect"),
    "SLOW_ANSWER_SECONDS": ("5", _seconds, "a health answer slower than this after a quiet spell means a cold start"),
    "LOG_MAX_BYTES": ("1048576", lambda n, r: _count(n, r, 1024), "size at which a log file is rotated"),
    "LOG_BACKUP_COUNT": ("3", lambda n, r: _count(n, r, 1), "rotated log files kept per service"),
    "LOG_LEVEL": ("INFO", _choice(("DEBUG", "INFO", "WARNING", "ERROR")), "log detail"),
    "ALERT_URLS": ("", _alert_urls, "apprise URLs for alerts, comma or space separated (secret: shown as service and fingerprint)"),
    "ALERT_CONFIG": ("", _config_file, "an apprise config file listing the alert URLs, instead of or besides ALERT_URLS"),
    "ALERT_AFTER": ("3", lambda n, r: _count(n, r, 1), "checks in a row a problem must hold before it alerts (and before HEARTBEAT_URL/fail)"),
    "ALERT_REPEAT": ("21600", _seconds, "seconds between reminders while a problem holds (21600 is 6 hours)"),
    "ALERT_BATCH_SECONDS": ("60", _seconds, "alerts within this many seconds of the first go out as one message"),
    "ALERT_RETRY_SECONDS": ("30", _seconds, "first pause before an undelivered alert is tried again, doubling up to an hour"),
    "ALERT_TIMEOUT": ("30", _seconds, "seconds one alert URL may take to deliver"),
    "HEARTBEAT_URL": ("", _url, "healthchecks.io-style ping URL, pinged only while PROTECTED, /fail otherwise (secret)"),
    "HEARTBEAT_INTERVAL": ("300", _seconds, "seconds between heartbeat pings at most"),
}

# Fields whose values are secrets: repr shows *** instead.
SECRET_FIELDS = ("api_token", "alert_urls", "heartbeat_url")


@dataclass(frozen=True)
class Settings:
    """Every knob of sleepguard, validated; intervals and timeouts in seconds."""

    backend_url: str
    backend_mode: str
    snapshot_url: str
    api_token: str
    data_dir: Path
    pins_file: Path
    keep_alive_interval: float
    backup_interval: float
    trigger_poll_interval: float
    restore_check_interval: float
    backup_workers: int
    restore_workers: int
    connect_timeout: float
    read_timeout: float
    retries: int
    retry_backoff: float
    max_response_bytes: int
    keep_last: int
    keep_hourly: int
    keep_daily: int
    large_drop_fraction: float
    slow_answer_seconds: float
    log_max_bytes: int
    log_backup_count: int
    log_level: str
    alert_urls: str
    alert_config: str
    alert_after: int
    alert_repeat: float
    alert_batch_seconds: float
    alert_retry_seconds: float
    alert_timeout: float
    heartbeat_url: str
    heartbeat_interval: float

    def __repr__(self):
        # The token is a secret: keep it out of any log line or traceback that prints settings.
        shown = ", ".join(f"{f.name}={'***' if f.name in SECRET_FIELDS and getattr(self, f.name) else getattr(self, f.name)!r}"
                          for f in fields(self))
        return f"Settings({shown})"


def load_settings(environ=None, env_file=None):
    """Read settings from environ (default os.environ), then the .env file; raise SettingsError on a bad value."""
    environ = os.environ if environ is None else environ
    env_file = Path(env_file or environ.get("ENV_FILE") or DEFAULT_ENV_FILE)
    from_file = dotenv_values(env_file) if env_file.is_file() else {}
    values = {}
    for name, (default, parse, _what) in SETTINGS.items():
        raw = environ.get(name)
        if raw is None:
            raw = from_file.get(name)
        if raw is None:
            raw = default
        values[name.lower()] = parse(name, raw.strip())
    if not values["snapshot_url"] and values["backend_url"]:
        values["snapshot_url"] = values["backend_url"] + "/api/admin/snapshot"
    if values["backend_mode"] == "snapshot" and values["backend_url"] and not values["api_token"]:
        raise SettingsError("API_TOKEN must be set when BACKEND_MODE is snapshot")
    values["pins_file"] = Path(values["pins_file"]).expanduser() if values["pins_file"] else values["data_dir"] / "pins.json"
    return Settings(**values)


def require_backend(settings):
    """Raise a SettingsError explaining what to set when no back end is configured."""
    if not settings.backend_url:
        raise SettingsError("BACKEND_URL is not set: put e.g. BACKEND_URL=https://babs10.onrender.com in .env "
                            "(see .env.example), or try the bundled demo with: python3 start_all_super_services.py --demo")
