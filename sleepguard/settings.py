"""Settings: environment first, then .env beside the commands, validated into one object."""

import io
import ipaddress
import os
import re
import stat
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlparse

from dotenv import dotenv_values

from .atomicfile import refuse_open_folder
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
    # Not the raw value in the message: a URL that does not parse may still hold a password.
    example = f"{name} must be an http:// or https:// URL such as https://babs10.onrender.com"
    try:
        parsed = urlparse(raw)
        parsed.port  # a port that is not a number raises here, not deep inside a request
    except ValueError as exc:
        # urllib's reasons name only the port or the brackets: "Port out of range 0-65535".
        raise SettingsError(f"{example} ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise SettingsError(example)
    return raw.rstrip("/")


def _choice(choices, fold=None):
    def parse(name, raw):
        value = fold(raw) if fold else raw
        if value not in choices:
            raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
        return value
    return parse


def _text(name, raw):
    return raw


def _path(name, raw):
    if raw.strip() == "":
        raise SettingsError(f"{name} must be a folder or file path, got an empty value")
    if "\0" in raw:
        raise SettingsError(f"{name} must be a folder or file path, got one with a NUL character in it")
    # Relative to the commands' folder, as the default is: the same place whichever folder a command runs from.
    return PROJECT_DIR / Path(raw).expanduser()


def _folder(name, raw):
    path = _path(name, raw)
    # Checked here, so every command refuses it in one line instead of failing deep inside with a traceback.
    if path.exists() and not path.is_dir():
        raise SettingsError(f"{name} must be a folder, but {path} is a file")
    if path.is_dir():
        refuse_open_folder(path, name)
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
    # 32: reading a customer list hashes nothing, so the host does the same work whatever the concurrency and
    # only the waiting overlaps; at 50 ms a round trip 32 makes a backup >= 10x the sequential way (benchmarks/).
    "BACKUP_WORKERS": ("32", lambda n, r: _count(n, r, 1), "parallel requests while reading or restoring customers"),
    "RESTORE_WORKERS": ("32", lambda n, r: _count(n, r, 1), "parallel requests while restoring customers (creating one hashes nothing)"),
    "CONNECT_TIMEOUT": ("10", _seconds, "seconds to wait for a connection"),
    "READ_TIMEOUT": ("90", _seconds, "seconds one request may take, its retries included (must outlast a cold start)"),
    "RETRIES": ("3", lambda n, r: _count(n, r, 0, MAX_RETRIES), "retries of a request that got no usable answer (reads, and the restore's creating POSTs)"),
    "RETRY_BACKOFF": ("0.5", _seconds, "first pause between retries, doubling each time"),
    "MAX_RESPONSE_BYTES": ("52428800", lambda n, r: _count(n, r, 1024), "largest answer accepted, in bytes"),
    "KEEP_LAST": ("50", lambda n, r: _count(n, r, 1), "history: keep every change among the newest this many"),
    "KEEP_HOURLY": ("48", lambda n, r: _count(n, r, 0), "history: keep one backup per hour for this many hours"),
    "KEEP_DAILY": ("30", lambda n, r: _count(n, r, 0), "history: keep one backup per day for this many days"),
    "LARGE_DROP_FRACTION": ("0.5", _fraction, "a read that lost more than this share of customers is held as suspect"),
    "SLOW_ANSWER_SECONDS": ("5", _seconds, "a health answer slower than this after a quiet spell means a cold start"),
    "LOG_MAX_BYTES": ("1048576", lambda n, r: _count(n, r, 1024), "size at which a log file is rotated"),
    "LOG_BACKUP_COUNT": ("3", lambda n, r: _count(n, r, 1), "rotated log files kept per service"),
    "STATE_WRITE_INTERVAL": ("3600", _seconds, "seconds a service's unchanged state file waits to be rewritten (changes are written at once)"),
    "LOG_LEVEL": ("INFO", _choice(("DEBUG", "INFO", "WARNING", "ERROR"), fold=str.upper), "log detail"),
    # The off-site parsers are defined at the end of this file: the lambdas look them up when called.
    "OFFSITE_URL": ("", lambda n, r: _s3_url(n, r), "off-site copies: s3://bucket/prefix (empty: none)"),
    "OFFSITE_ENDPOINT_URL": ("", _url, "off-site: the S3-compatible store's URL (B2, R2, MinIO...; empty: AWS)"),
    "OFFSITE_RECIPIENT": ("", lambda n, r: _age_recipient(n, r), "off-site: the owner's age1... public key"),
    "OFFSITE_IDENTITY_FILE": ("", lambda n, r: _identity_file(n, r), "off-site: age identity file to read copies (0600)"),
    "OFFSITE_MAX_BEHIND": ("3", lambda n, r: _count(n, r, 1), "off-site: this many copies waiting is a WARNING"),
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

# Loops faster than this hammer a host: allowed only against a back end on this machine (the demo, the tests).
MIN_REMOTE_INTERVAL = 1.0
INTERVALS = ("KEEP_ALIVE_INTERVAL", "BACKUP_INTERVAL", "TRIGGER_POLL_INTERVAL", "RESTORE_CHECK_INTERVAL")


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
    state_write_interval: float
    log_level: str
    offsite_url: str
    offsite_endpoint_url: str
    offsite_recipient: str
    offsite_identity_file: str
    offsite_max_behind: int
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


def is_loopback_url(url):
    """True when url names this machine (127.0.0.0/8, ::1, localhost): only there may loops run sub-second."""
    host = (urlparse(url).hostname or "").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# A .env is a few dozen lines; anything this large is another file named by mistake.
MAX_ENV_FILE_BYTES = 1024 * 1024
# Names whose value in a .env is a secret: such a .env must be closed to others, as the PIN file is.
ENV_FILE_SECRETS = ("API_TOKEN", "ALERT_URLS", "HEARTBEAT_URL", "AWS_SECRET_ACCESS_KEY")


def _refuse_open_env_file(env_file, mode, values):
    """A .env that holds a secret and that others may read or change is refused, naming the fix."""
    held = [name for name in ENV_FILE_SECRETS if (values.get(name) or "").strip()]
    if held and mode & 0o077:
        raise SettingsError(f"settings file {env_file} holds {held[0]} but others may read or change it "
                            f"(mode {mode:04o}): chmod 600 {env_file}")


def _read_env_file(env_file, named):
    """The settings in env_file; a missing file is {} only when nobody named it (the default .env)."""
    try:
        with open(env_file, "rb") as handle:
            # The mode of the file read, not of whatever the name points at a moment later.
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
            # Bounded: ENV_FILE=/dev/zero, or a backup named by mistake, must not eat the memory.
            data = handle.read(MAX_ENV_FILE_BYTES + 1)
        if len(data) > MAX_ENV_FILE_BYTES:
            raise SettingsError(f"settings file {env_file} is over {MAX_ENV_FILE_BYTES} bytes: "
                                f"is it the right file? point ENV_FILE at your .env")
        # utf-8-sig: a .env saved with a byte-order mark would otherwise hide its first setting.
        text = data.decode("utf-8-sig")
    except FileNotFoundError:
        if not named:
            return {}
        raise SettingsError(f"ENV_FILE {env_file} does not exist: create it, or unset ENV_FILE "
                            f"to use {DEFAULT_ENV_FILE}") from None
    except IsADirectoryError:
        raise SettingsError(f"settings file {env_file} is a folder: point ENV_FILE at a file") from None
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise SettingsError(f"settings file {env_file} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
                            f"on line {line}): save it as UTF-8") from None
    except OSError as exc:
        raise SettingsError(f"settings file {env_file} cannot be read ({exc.strerror}): "
                            f"check its permissions") from None
    values = dotenv_values(stream=io.StringIO(text))
    _refuse_open_env_file(env_file, mode, values)
    return values


def _refuse_fast_loops_against_a_remote_host(values):
    """Sub-second intervals are for the demo and the tests: against a real host they are abuse."""
    urls = [url for url in (values["backend_url"], values["snapshot_url"]) if url]
    remote = [url for url in urls if not is_loopback_url(url)]
    if not remote:
        return
    for name in INTERVALS:
        if values[name.lower()] < MIN_REMOTE_INTERVAL:
            # The host only, never the whole URL: it may hold a password.
            raise SettingsError(f"{name} must be at least {MIN_REMOTE_INTERVAL:g} s for a back end on another "
                                f"machine ({urlparse(remote[0]).hostname}), got {values[name.lower()]:g}; "
                                f"shorter intervals are for a back end on 127.0.0.1 or localhost only")


def load_settings(environ=None, env_file=None):
    """Read settings from environ (default os.environ), then the .env file; raise SettingsError on a bad value.

    env_file (or else ENV_FILE) names a file that must exist; without either, .env beside the commands is
    read if it is there. A relative path is taken from the commands' folder.
    """
    environ = os.environ if environ is None else environ
    named = env_file or environ.get("ENV_FILE")
    if named is not None and str(named).strip() == "":
        named = None
    from_file = _read_env_file(_path("ENV_FILE", str(named)) if named else DEFAULT_ENV_FILE, named is not None)
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
    values["pins_file"] = _path("PINS_FILE", values["pins_file"]) if values["pins_file"] else values["data_dir"] / "pins.json"
    _refuse_fast_loops_against_a_remote_host(values)
    return Settings(**values)


def require_backend(settings):
    """Raise a SettingsError explaining what to set when no back end is configured."""
    if not settings.backend_url:
        raise SettingsError("BACKEND_URL is not set: put e.g. BACKEND_URL=https://babs10.onrender.com in .env "
                            "(see .env.example), or try the bundled demo with: python3 start_all_super_services.py --demo")


# S3's bucket naming rules: 3-63 lower-case letters, digits, dots and hyphens, a letter or digit at each end.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# An age X25519 recipient: "age1" and 58 bech32 characters.
_AGE_RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")


def _s3_url(name, raw):
    if raw == "":
        return ""
    parsed = urlparse(raw)
    if parsed.scheme != "s3" or not _BUCKET.match(parsed.netloc or "") or parsed.query or parsed.fragment:
        raise SettingsError(f"{name} must be s3://bucket/prefix with an S3 bucket name (3-63 lower-case letters, "
                            f"digits, dots, hyphens), got {raw!r}")
    return f"s3://{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")


def _age_recipient(name, raw):
    if raw and not _AGE_RECIPIENT.match(raw):
        # The value is not repeated: a private key (AGE-SECRET-KEY-...) put here by mistake must not be shown.
        raise SettingsError(f"{name} must be an age public key (age1 and 58 more characters, as age-keygen or "
                            "manual_backup.py --offsite-keygen prints it); the value given is not one")
    return raw


def _identity_file(name, raw):
    # Read (and checked for 0600) only where it is used; a folder is refused here, in one line.
    if raw and Path(raw).expanduser().is_dir():
        raise SettingsError(f"{name} must be an age identity file, but {raw} is a folder")
    return raw
