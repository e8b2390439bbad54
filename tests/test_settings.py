"""Settings: environment first, then .env; every bad value fails at start naming the setting."""

import re

import pytest

from helpers import PROJECT_DIR
from sleepguard.exceptions import SettingsError
from sleepguard.settings import SETTINGS, load_settings, require_backend

NO_FILE = "/nonexistent/.env"


def test_defaults_are_the_documented_ones():
    settings = load_settings(environ={}, env_file=NO_FILE)
    assert settings.backup_interval == 120 and settings.keep_alive_interval == 120
    assert settings.trigger_poll_interval == 15 and settings.restore_check_interval == 60
    assert (settings.keep_last, settings.keep_hourly, settings.keep_daily) == (50, 48, 30)
    assert settings.backend_mode == "babs10" and settings.data_dir == PROJECT_DIR
    assert settings.pins_file == PROJECT_DIR / "pins.json"


def test_intervals_accept_fractions_of_a_second():
    settings = load_settings(environ={"BACKUP_INTERVAL": "0.05", "RESTORE_CHECK_INTERVAL": ".2"}, env_file=NO_FILE)
    assert settings.backup_interval == 0.05 and settings.restore_check_interval == 0.2


def test_environment_wins_over_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("BACKUP_INTERVAL=30\nKEEP_LAST=7\nBACKEND_URL=http://from-file:8000/\n")
    settings = load_settings(environ={"BACKUP_INTERVAL": "5"}, env_file=env_file)
    assert settings.backup_interval == 5 and settings.keep_last == 7
    assert settings.backend_url == "http://from-file:8000"
    assert settings.snapshot_url == "http://from-file:8000/api/admin/snapshot"


def test_env_file_setting_points_at_another_file(tmp_path):
    env_file = tmp_path / "other.env"
    env_file.write_text("KEEP_DAILY=3\n")
    assert load_settings(environ={"ENV_FILE": str(env_file)}).keep_daily == 3


@pytest.mark.parametrize("name, value, expected", [
    ("BACKUP_INTERVAL", "abc", "BACKUP_INTERVAL must be a number of seconds above 0"),
    ("KEEP_ALIVE_INTERVAL", "0", "KEEP_ALIVE_INTERVAL must be a number of seconds above 0"),
    ("RESTORE_CHECK_INTERVAL", "-1", "RESTORE_CHECK_INTERVAL must be a number of seconds above 0"),
    ("TRIGGER_POLL_INTERVAL", "nan", "TRIGGER_POLL_INTERVAL must be a number of seconds above 0"),
    ("READ_TIMEOUT", "inf", "READ_TIMEOUT must be a number of seconds above 0"),
    ("BACKUP_WORKERS", "0", "BACKUP_WORKERS must be a whole number of at least 1"),
    ("KEEP_LAST", "2.5", "KEEP_LAST must be a whole number of at least 1"),
    ("LARGE_DROP_FRACTION", "1.5", "LARGE_DROP_FRACTION must be a fraction above 0 and at most 1"),
    ("BACKEND_URL", "babs10.onrender.com", "BACKEND_URL must be an http:// or https:// URL"),
    ("BACKEND_MODE", "mongo", "BACKEND_MODE must be one of babs10, snapshot"),
    ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be one of"),
    ("DATA_DIR", " ", "DATA_DIR must be a folder or file path"),
])
def test_bad_values_name_the_setting_and_what_it_accepts(name, value, expected):
    with pytest.raises(SettingsError, match=re.escape(expected)):
        load_settings(environ={name: value}, env_file=NO_FILE)


def test_snapshot_mode_needs_a_token_and_never_shows_it():
    with pytest.raises(SettingsError, match="API_TOKEN must be set"):
        load_settings(environ={"BACKEND_MODE": "snapshot", "BACKEND_URL": "http://x"}, env_file=NO_FILE)
    settings = load_settings(environ={"BACKEND_MODE": "snapshot", "BACKEND_URL": "http://x",
                                      "API_TOKEN": "canary-token-77"}, env_file=NO_FILE)
    assert "canary-token-77" not in repr(settings) and "canary-token-77" not in str(settings)


def test_missing_backend_url_explains_what_to_set():
    with pytest.raises(SettingsError, match="BACKEND_URL is not set.*--demo"):
        require_backend(load_settings(environ={}, env_file=NO_FILE))


def test_env_example_documents_every_setting_with_its_default():
    text = (PROJECT_DIR / ".env.example").read_text()
    for name, (default, _parse, _what) in SETTINGS.items():
        assert re.search(rf"^#? ?{name}=", text, re.M), f"{name} missing from .env.example"
        if default and name != "DATA_DIR":
            assert f"Default: {default}" in text, f"{name}'s default missing from .env.example"
