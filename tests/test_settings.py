"""Settings: environment first, then .env; every bad value fails at start naming the setting."""

import os
import re
import stat

import pytest

from helpers import NO_SETTINGS_FILE, PROJECT_DIR
from sleepguard.exceptions import SettingsError
from sleepguard.settings import SETTINGS, load_settings, require_backend

NO_FILE = NO_SETTINGS_FILE


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


def test_log_level_is_case_insensitive():
    assert load_settings(environ={"LOG_LEVEL": "debug"}, env_file=NO_FILE).log_level == "DEBUG"
    assert load_settings(environ={"LOG_LEVEL": "Warning"}, env_file=NO_FILE).log_level == "WARNING"


INTERVALS = ["KEEP_ALIVE_INTERVAL", "BACKUP_INTERVAL", "TRIGGER_POLL_INTERVAL", "RESTORE_CHECK_INTERVAL"]


@pytest.mark.parametrize("name", INTERVALS)
@pytest.mark.parametrize("url", ["", "http://127.0.0.1:8000", "http://127.3.4.5", "http://[::1]:9", "http://localhost:1",
                                 "https://LOCALHOST./x"])
def test_sub_second_intervals_are_for_a_back_end_on_this_machine(name, url):
    assert getattr(load_settings(environ={name: "0.01", "BACKEND_URL": url}, env_file=NO_FILE), name.lower()) == 0.01


@pytest.mark.parametrize("name", INTERVALS)
@pytest.mark.parametrize("urls", [{"BACKEND_URL": "https://owner:hunter2-secret@babs10.onrender.com"},
                                  {"BACKEND_URL": "http://10.0.0.7:8000"},
                                  {"BACKEND_URL": "http://localhost.evil.example.com"},
                                  {"BACKEND_URL": "http://127.0.0.1:8000", "SNAPSHOT_URL": "https://shop.example.com/s"}])
def test_sub_second_intervals_against_another_machine_are_refused(name, urls):
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={name: "0.5", **urls}, env_file=NO_FILE)
    message = str(caught.value)
    assert message.startswith(f"{name} must be at least 1 s for a back end on another machine") and "\n" not in message
    assert "hunter2" not in message
    # One second and more is fine anywhere.
    assert getattr(load_settings(environ={name: "1", **urls}, env_file=NO_FILE), name.lower()) == 1


def test_an_env_file_named_but_missing_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "typo.env"
    for kwargs in ({"environ": {"ENV_FILE": str(missing)}}, {"environ": {}, "env_file": missing}):
        with pytest.raises(SettingsError, match=re.escape(f"ENV_FILE {missing} does not exist")):
            load_settings(**kwargs)


def test_the_default_env_file_may_be_missing(monkeypatch, tmp_path):
    monkeypatch.setattr("sleepguard.settings.DEFAULT_ENV_FILE", tmp_path / ".env")
    assert load_settings(environ={}).keep_last == 50


@pytest.mark.parametrize("content, words", [
    (b"BACKEND_URL=http://127.0.0.1:9\nOWNER=J\xf6rg\n", "is not UTF-8 text (byte 0xf6 on line 2): save it as UTF-8"),
    (b"\xff\xfeB\x00", "is not UTF-8 text (byte 0xff on line 1): save it as UTF-8"),
])
def test_an_env_file_that_is_not_utf8_is_refused_in_one_line(tmp_path, content, words):
    env_file = tmp_path / "latin1.env"
    env_file.write_bytes(content)
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"ENV_FILE": str(env_file)})
    assert str(caught.value) == f"settings file {env_file} {words}"


def test_an_env_file_that_is_a_folder_is_refused(tmp_path):
    with pytest.raises(SettingsError, match="is a folder: point ENV_FILE at a file"):
        load_settings(environ={"ENV_FILE": str(tmp_path)})


def test_an_env_file_with_a_byte_order_mark_keeps_its_first_setting(tmp_path):
    env_file = tmp_path / "notepad.env"
    env_file.write_bytes("\ufeffKEEP_LAST=7\n".encode("utf-8"))
    assert load_settings(environ={"ENV_FILE": str(env_file)}).keep_last == 7


def test_relative_paths_are_taken_from_the_commands_folder_wherever_one_runs(monkeypatch, tmp_path):
    env_file = tmp_path / "settings" / "shop.env"
    env_file.parent.mkdir()
    env_file.write_text("KEEP_DAILY=4\n")
    # Run from another folder, where the same relative name would mean something else.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(environ={"DATA_DIR": "relative-data", "PINS_FILE": "owner/pins.json",
                                      "ENV_FILE": os.path.relpath(env_file, PROJECT_DIR)})
    assert settings.data_dir == PROJECT_DIR / "relative-data" and settings.keep_daily == 4
    assert settings.pins_file == PROJECT_DIR / "owner" / "pins.json"
    assert not (PROJECT_DIR / "relative-data").exists(), "loading settings must not create DATA_DIR"


@pytest.mark.parametrize("mode, who", [(0o775, "its group"), (0o757, "others"), (0o1777, "its group and others"),
                                       (0o720, "its group")])
def test_a_data_dir_others_can_write_into_is_refused(tmp_path, mode, who):
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(mode)
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"DATA_DIR": str(folder)}, env_file=NO_FILE)
    assert str(caught.value).startswith(f"DATA_DIR {folder} is writable by {who} (mode {mode:04o})")
    assert f"chmod go-w {folder}" in str(caught.value) and "\n" not in str(caught.value)
    assert stat.S_IMODE(folder.stat().st_mode) == mode, "refusing it must not change it"


@pytest.mark.parametrize("mode", [0o700, 0o755, 0o750, 0o705])
def test_a_data_dir_only_its_owner_can_write_is_accepted_as_it_is(tmp_path, mode):
    folder = tmp_path / "mine"
    folder.mkdir()
    folder.chmod(mode)
    assert load_settings(environ={"DATA_DIR": str(folder)}, env_file=NO_FILE).data_dir == folder
    assert stat.S_IMODE(folder.stat().st_mode) == mode


def test_a_path_with_a_nul_character_is_refused():
    with pytest.raises(SettingsError, match="DATA_DIR must be a folder or file path, got one with a NUL"):
        load_settings(environ={"DATA_DIR": "/tmp/a\0b"}, env_file=NO_FILE)


@pytest.mark.parametrize("url", ["http://[::1", "http://host:port/", "http://:80", "https://u:p@[bad/"])
def test_a_url_that_does_not_parse_is_refused_without_echoing_it(url):
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"BACKEND_URL": url}, env_file=NO_FILE)
    assert str(caught.value).startswith("BACKEND_URL must be an http:// or https:// URL") and url not in str(caught.value)


def test_an_endless_or_huge_env_file_is_refused_without_reading_it_all():
    with pytest.raises(SettingsError, match=re.escape("settings file /dev/zero is over 1048576 bytes: is it the right")):
        load_settings(environ={"ENV_FILE": "/dev/zero"})


def test_a_port_out_of_range_is_refused_saying_so():
    with pytest.raises(SettingsError, match=re.escape("BACKEND_URL must be an http:// or https:// URL such as "
                                                      "https://babs10.onrender.com (Port out of range 0-65535)")):
        load_settings(environ={"BACKEND_URL": "http://127.0.0.1:99999"}, env_file=NO_FILE)


@pytest.mark.parametrize("secret", ["API_TOKEN", "ALERT_URLS", "HEARTBEAT_URL", "AWS_SECRET_ACCESS_KEY"])
def test_an_env_file_holding_a_secret_must_be_0600(tmp_path, secret):
    env_file = tmp_path / ".env"
    value = "http://127.0.0.1:9/s3cret" if secret == "HEARTBEAT_URL" else "json://127.0.0.1:9/s3cret"
    env_file.write_text(f"KEEP_DAILY=4\n{secret}={value}\n")
    for mode in (0o644, 0o640, 0o660):
        os.chmod(env_file, mode)
        with pytest.raises(SettingsError) as caught:
            load_settings(environ={}, env_file=env_file)
        assert f"chmod 600 {env_file}" in str(caught.value) and "s3cret" not in str(caught.value)
        assert "\n" not in str(caught.value)
    os.chmod(env_file, 0o600)
    assert load_settings(environ={}, env_file=env_file).keep_daily == 4
    env_file.write_text("KEEP_DAILY=5\n")
    os.chmod(env_file, 0o644)  # nothing secret in it: others may read it
    assert load_settings(environ={}, env_file=env_file).keep_daily == 5
