"""Bad inputs: every setting given a wrong value, damaged or hostile backup files, unsafe PIN files,
a DATA_DIR that cannot be made or that others can write into, a settings file missing or not UTF-8.

Each is refused with one line on stderr naming the problem, a non-zero exit, and no change:
no file in DATA_DIR, no record in the back end. Covered elsewhere and not repeated here:
in-process messages of bad settings (test_settings.py), BACKUP_INTERVAL=soon for every command
(test_scripts.py), a plain path outside DATA_DIR and a 0644 PIN file for restore_simple.py
(test_restore_simple.py), PIN file modes and malformed content in-process (test_pins.py).
"""

import json
import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import DemoBackend
from helpers import (COMMANDS, NO_SETTINGS_FILE, PROJECT_DIR, backup_now, command_env, files_under, free_port,
                     make_settings, seed_shop)
from service_helpers import processes_of
from sleepguard import store
from sleepguard.exceptions import BackupFileError, PinFileError, RestoreError, SettingsError
from sleepguard.pins import load_pins_file, restored_pins_path
from sleepguard.source import choose_backup
from sleepguard.settings import MAX_RETRIES, MAX_SECONDS, SETTINGS, load_settings
from sleepguard.snapshot import Snapshot, utc_now_iso
from sleepguard.store import MAX_BACKUP_FILE_BYTES

PARALLEL = 4
RUN_DEADLINE = 30
PINS = [f"61{i}4093{i}7" for i in range(2)]

# Setting → (wrong value, further settings it needs, what the one line must say). A wrong value of
# every kind each parser refuses; the too-large ones crashed or hung a command before they were refused.
WRONG = {
    "BACKEND_URL": ("babs10.onrender.com", {}, "BACKEND_URL must be an http:// or https:// URL"),
    "BACKEND_MODE": ("mongo", {}, "BACKEND_MODE must be one of babs10, snapshot"),
    "SNAPSHOT_URL": ("ftp://example.com/state", {}, "SNAPSHOT_URL must be an http:// or https:// URL"),
    "API_TOKEN": ("   ", {"BACKEND_MODE": "snapshot"}, "API_TOKEN must be set when BACKEND_MODE is snapshot"),
    "DATA_DIR": ("<a file>", {}, "DATA_DIR must be a folder, but "),
    "PINS_FILE": ("<a folder>", {}, "is not a regular file"),
    "KEEP_ALIVE_INTERVAL": ("0", {}, "KEEP_ALIVE_INTERVAL must be a number of seconds above 0"),
    "BACKUP_INTERVAL": ("-120", {}, "BACKUP_INTERVAL must be a number of seconds above 0"),
    "TRIGGER_POLL_INTERVAL": ("nan", {}, "TRIGGER_POLL_INTERVAL must be a number of seconds above 0"),
    "RESTORE_CHECK_INTERVAL": ("1 minute", {}, "RESTORE_CHECK_INTERVAL must be a number of seconds above 0"),
    "BACKUP_WORKERS": ("0", {}, "BACKUP_WORKERS must be a whole number of at least 1"),
    "RESTORE_WORKERS": ("two", {}, "RESTORE_WORKERS must be a whole number of at least 1"),
    "CONNECT_TIMEOUT": ("1e10", {}, f"CONNECT_TIMEOUT must be a number of seconds above 0 and at most {MAX_SECONDS}"),
    "READ_TIMEOUT": ("inf", {}, "READ_TIMEOUT must be a number of seconds above 0"),
    "RETRIES": ("1000000", {}, f"RETRIES must be a whole number from 0 to {MAX_RETRIES}"),
    "RETRY_BACKOFF": ("-0.5", {}, "RETRY_BACKOFF must be a number of seconds above 0"),
    "MAX_RESPONSE_BYTES": ("50MB", {}, "MAX_RESPONSE_BYTES must be a whole number of at least 1024"),
    "KEEP_LAST": ("0", {}, "KEEP_LAST must be a whole number of at least 1"),
    "KEEP_HOURLY": ("-1", {}, "KEEP_HOURLY must be a whole number of at least 0"),
    "KEEP_DAILY": ("3.5", {}, "KEEP_DAILY must be a whole number of at least 0"),
    "LARGE_DROP_FRACTION": ("50%", {}, "LARGE_DROP_FRACTION must be a fraction above 0 and at most 1"),
    "SLOW_ANSWER_SECONDS": ("", {}, "SLOW_ANSWER_SECONDS must be a number of seconds above 0"),
    "LOG_MAX_BYTES": ("1e6", {}, "LOG_MAX_BYTES must be a whole number of at least 1024"),
    "LOG_BACKUP_COUNT": ("0", {}, "LOG_BACKUP_COUNT must be a whole number of at least 1"),
    "STATE_WRITE_INTERVAL": ("0", {}, "STATE_WRITE_INTERVAL must be a number of seconds above 0"),
    "LOG_LEVEL": ("verbose", {}, "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR"),
    "OFFSITE_URL": ("https://shop-copies/x", {}, "OFFSITE_URL must be s3://bucket/prefix"),
    "OFFSITE_ENDPOINT_URL": ("minio:9000", {}, "OFFSITE_ENDPOINT_URL must be an http:// or https:// URL"),
    "OFFSITE_RECIPIENT": ("AGE-SECRET-KEY-1QQQQ", {}, "OFFSITE_RECIPIENT must be an age public key"),
    "OFFSITE_IDENTITY_FILE": ("<a folder>", {}, "OFFSITE_IDENTITY_FILE must be an age identity file"),
    "OFFSITE_MAX_BEHIND": ("0", {}, "OFFSITE_MAX_BEHIND must be a whole number of at least 1"),
    "ALERT_URLS": ("ntfy://ok-topic, my-secret-topic", {}, "ALERT_URLS entry 2 of 2 is not an apprise URL"),
    "ALERT_CONFIG": ("<a folder>", {}, "ALERT_CONFIG must be an apprise config file, but "),
    "ALERT_AFTER": ("0", {}, "ALERT_AFTER must be a whole number of at least 1"),
    "ALERT_REPEAT": ("6h", {}, "ALERT_REPEAT must be a number of seconds above 0"),
    "ALERT_BATCH_SECONDS": ("-60", {}, "ALERT_BATCH_SECONDS must be a number of seconds above 0"),
    "ALERT_RETRY_SECONDS": ("1e9", {}, f"ALERT_RETRY_SECONDS must be a number of seconds above 0 and at most {MAX_SECONDS}"),
    "ALERT_TIMEOUT": ("0", {}, "ALERT_TIMEOUT must be a number of seconds above 0"),
    "HEARTBEAT_URL": ("hc-ping.com/uuid", {}, "HEARTBEAT_URL must be an http:// or https:// URL"),
    "HEARTBEAT_INTERVAL": ("five minutes", {}, "HEARTBEAT_INTERVAL must be a number of seconds above 0"),
}


def run(command, *args, env):
    """Run a top-level command with no terminal and a deadline; a hang counts as a failure, not a stuck suite."""
    try:
        return subprocess.run([sys.executable, str(PROJECT_DIR / command), *args], cwd=PROJECT_DIR, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=RUN_DEADLINE)
    except subprocess.TimeoutExpired as hung:
        return subprocess.CompletedProcess(hung.cmd, "hung", hung.stdout or "", f"hung for {RUN_DEADLINE} s")


def run_all(jobs):
    """Run (command, args, env) jobs in parallel; the results in the same order."""
    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(lambda job: run(job[0], *job[1], env=job[2]), jobs))


# backup_status.py says UNKNOWN (3) when it cannot tell, as monitoring plugins do (issue 12); the others say 2.
ERROR_EXIT_OF = {"backup_status.py": 3}


def one_line_error(result, command, *words):
    """Why result is not a one-line `<command>: error: ...` with its error exit naming words ('' when it is)."""
    lines = result.stderr.strip().splitlines()
    if result.returncode != ERROR_EXIT_OF.get(command, 2):
        return f"exit code {result.returncode}, stderr {result.stderr[-400:]!r}"
    if len(lines) != 1 or not lines[0].startswith(f"{command}: error: "):
        return f"not one error line: {result.stderr[-400:]!r}"
    missing = [word for word in words if word not in lines[0]]
    return f"{lines[0]!r} does not say {missing}" if missing else ""


def only_the_backup_line(stdout):
    """A restore refused after choosing its backup has printed that one line, and nothing more."""
    return all(line.startswith("backup: ") for line in stdout.splitlines())


# --- every setting, each given a wrong value ---

def resolve(value, folder):
    """The wrong value itself, or for a placeholder a real file or folder under folder."""
    if value == "<a file>":
        (folder / "not-a-folder").write_text("a file, not a folder\n")
        return str(folder / "not-a-folder")
    if value == "<a folder>":
        (folder / "pins-folder").mkdir(exist_ok=True)
        return str(folder / "pins-folder")
    return value


def test_the_table_gives_every_setting_a_wrong_value():
    assert sorted(WRONG) == sorted(SETTINGS), "a setting was added or removed: give it a wrong value in WRONG"


@pytest.mark.parametrize("name", list(WRONG))
def test_every_wrong_setting_is_refused_naming_it(name, tmp_path):
    value, extra, words = WRONG[name]
    environ = {"BACKEND_URL": "http://127.0.0.1:9", "DATA_DIR": str(tmp_path), **extra,
               name: resolve(value, tmp_path)}
    with pytest.raises((SettingsError, PinFileError)) as caught:
        settings = load_settings(environ=environ, env_file=NO_SETTINGS_FILE)
        load_pins_file(settings.pins_file)  # the one setting checked where it is used
    assert words in str(caught.value) and "\n" not in str(caught.value)


# One wrong setting per command, together one of each kind of parser, in a real subprocess.
BY_COMMAND = [
    ("keep_alive_super_aggressive.py", (), "CONNECT_TIMEOUT"),
    ("auto_backup_super_aggressive.py", (), "DATA_DIR"),
    ("auto_restore_service.py", (), "API_TOKEN"),
    ("start_all_super_services.py", (), "RETRIES"),
    ("backup_status.py", ("--json",), "LARGE_DROP_FRACTION"),
    ("manual_backup.py", (), "BACKEND_URL"),
    ("restore_simple.py", ("--dry-run",), "LOG_LEVEL"),
    ("restore_simple.py", ("--file", "<sample>", "--yes"), "PINS_FILE"),
]


@pytest.fixture(scope="module")
def refusals(tmp_path_factory):
    """Run the commands of BY_COMMAND in parallel, each with its wrong setting; {setting: outcome}."""
    base = tmp_path_factory.mktemp("bad-settings")
    closed_url = f"http://127.0.0.1:{free_port()}"
    jobs, cases = [], {}
    for command, args, name in BY_COMMAND:
        value, extra, words = WRONG[name]
        case_dir = base / name.lower()
        data_dir = case_dir / "data"
        data_dir.mkdir(parents=True, mode=0o700)
        sample = data_dir / "sample.json"
        # A good legacy backup at hand, so only the wrong setting can stop the restore.
        sample.write_text(json.dumps({"backup_created": "2025-08-21T02:23:11", "backup_type": "auto",
                                      "users": [{"email": "anna@example.com"}], "customers": []}))
        args = tuple(str(sample) if arg == "<sample>" else arg for arg in args)
        env = command_env(data_dir, closed_url, **{**extra, name: resolve(value, data_dir if name == "PINS_FILE"
                                                                          else case_dir)})
        cases[name] = {"command": command, "data_dir": data_dir, "words": words, "before": files_under(case_dir)}
        jobs.append((command, args, env))
    try:
        for name, result in zip(cases, run_all(jobs)):
            cases[name]["result"] = result
            cases[name]["after"] = files_under(base / name.lower())
    finally:
        # Should a bad value ever be accepted, the launcher would have started services: end them.
        for case in cases.values():
            for process in processes_of(case["data_dir"]):
                process.kill()
    return cases


def test_each_command_is_tried():
    assert {command for command, _args, _name in BY_COMMAND} == set(COMMANDS)


@pytest.mark.parametrize("name", [name for _command, _args, name in BY_COMMAND])
def test_a_command_given_a_wrong_setting_says_so_in_one_line_and_writes_nothing(refusals, name):
    case = refusals[name]
    result = case["result"]
    problem = one_line_error(result, case["command"], case["words"])
    assert not problem, f"{name}={WRONG[name][0]!r} via {case['command']}: {problem}"
    assert "Traceback" not in result.stderr
    assert result.stdout == "" or (name == "PINS_FILE" and only_the_backup_line(result.stdout)), result.stdout
    assert case["after"] == case["before"], f"{case['command']} wrote into DATA_DIR despite a wrong {name}"


# --- backup files given to restore_simple.py --file ---

@pytest.fixture(scope="module")
def wiped_shop(tmp_path_factory):
    """A demo back end that was backed up and then wiped: any restore that goes ahead would show."""
    demo = DemoBackend()
    try:
        data_dir = tmp_path_factory.mktemp("bad-files") / "data"
        data_dir.mkdir(mode=0o700)
        shop = seed_shop(demo.url, users=2, customers=2, pin_of=lambda i: PINS[i])
        assert backup_now(make_settings(data_dir, demo.url)).kind == "good"
        demo.sleep_now()
        yield demo, data_dir, shop
    finally:
        demo.stop()


def assert_nothing_changed(demo, data_dir, before):
    assert files_under(data_dir) == before, "a refused restore wrote into DATA_DIR"
    assert not restored_pins_path(data_dir).exists()
    state = demo.state()
    assert state["users"] == [] and state["customers"] == [], "a refused restore changed the back end"


def huge_backup(path):
    """A backup of valid-looking JSON just over the cap: one owner with a very long list of customers."""
    customer = json.dumps({"id": "c" * 36, "name": "Customer", "money_given": 10.5, "total_spent": 3.25,
                           "orders": [{"id": "o", "items": [{"desc": "Item", "qty": "1", "price": "60.94"}]}]})
    count = MAX_BACKUP_FILE_BYTES // len(customer) + 100
    with open(path, "w") as handle:
        handle.write('{"format": "sleepguard-backup", "format_version": 1, "sha256": "0", "content": {"users": '
                     '[{"id": "u", "email": "anna@example.com", "customers": [')
        handle.write(",".join([customer] * count))
        handle.write("]}], \"extra\": {}}}\n")


def bad_backup_files(data_dir, outside):
    """{case: (path given to --file, what the one line must say)}; the files are written here."""
    good = json.loads((data_dir / "data_backup.json").read_text())
    tampered = json.loads(json.dumps(good).replace("Customer 1 of owner0", "Customer 9 of owner0"))
    contents = {
        "empty": (b"", "file is empty"),
        "blank": (b"  \n\n", "file is empty"),
        "truncated": ((data_dir / "data_backup.json").read_bytes()[:700], "not valid JSON (truncated or damaged?)"),
        "html error page": (b"<html><body>502 Bad Gateway</body></html>", "not valid JSON"),
        "binary": (bytes(range(256)), "not valid JSON"),
        "a JSON list": (b"[1, 2, 3]", "JSON of the wrong shape"),
        "a JSON string": (b'"data_backup.json"', "JSON of the wrong shape"),
        "ours, users not a list": (json.dumps({**good, "content": {"users": "everyone"}}).encode(),
                                   "backup content has the wrong shape"),
        "ours, a future version": (json.dumps({**good, "format_version": 99}).encode(), "format version 99"),
        "legacy, users not a list": (b'{"users": {"a": 1}, "customers": []}', "legacy backup has the wrong shape"),
        "wrong checksum": (json.dumps(tampered).encode(), "checksum mismatch"),
    }
    files = {}
    for case, (data, words) in contents.items():
        path = data_dir / f"bad-{case.replace(' ', '-').replace(',', '')}.json"
        path.write_bytes(data)
        files[case] = (path, words)
    huge_backup(data_dir / "huge.json")
    files["huge (over 50 MB)"] = (data_dir / "huge.json", f"over the {MAX_BACKUP_FILE_BYTES} a backup file may have")
    (data_dir / "a-folder.json").mkdir()
    files["a folder"] = (data_dir / "a-folder.json", "file is unreadable: Is a directory")
    files["missing"] = (data_dir / "no-such-backup.json", "file is missing")
    (outside / "elsewhere.json").write_bytes((data_dir / "data_backup.json").read_bytes())
    (data_dir / "link-out.json").symlink_to(outside / "elsewhere.json")
    files["a symlink out of DATA_DIR"] = (data_dir / "link-out.json", "is outside DATA_DIR")
    files["../ out of DATA_DIR"] = (data_dir / ".." / "outside" / "elsewhere.json", "is outside DATA_DIR")
    return files


# Each kind of bad file the brief names goes through the real command; the rest in-process below.
THROUGH_THE_COMMAND = ("empty", "truncated", "html error page", "a JSON list", "wrong checksum", "huge (over 50 MB)",
                       "a symlink out of DATA_DIR")
DRY_RUN_TOO = ("wrong checksum", "huge (over 50 MB)")


@pytest.fixture(scope="module")
def bad_files(wiped_shop):
    _demo, data_dir, _shop = wiped_shop
    outside = data_dir.parent / "outside"
    outside.mkdir()
    return bad_backup_files(data_dir, outside)


def test_bad_backup_files_are_refused_by_the_command_in_one_line_and_restore_nothing(wiped_shop, bad_files):
    demo, data_dir, _shop = wiped_shop
    assert (data_dir / "huge.json").stat().st_size > MAX_BACKUP_FILE_BYTES
    before = files_under(data_dir)
    env = command_env(data_dir, demo.url)
    jobs = [(case, ("--file", str(bad_files[case][0]), "--yes")) for case in THROUGH_THE_COMMAND]
    jobs += [(case, ("--file", str(bad_files[case][0]), "--dry-run")) for case in DRY_RUN_TOO]
    results = run_all([("restore_simple.py", args, env) for _case, args in jobs])
    problems = [f"{case} {args[-1]}: {problem}" for (case, args), result in zip(jobs, results)
                if (problem := one_line_error(result, "restore_simple.py", bad_files[case][1]))]
    assert not problems, "\n".join(problems)
    for result in results:
        assert result.stdout == "" and not any(pin in result.stderr for pin in PINS)
    assert_nothing_changed(demo, data_dir, before)


@pytest.mark.parametrize("case", ["blank", "binary", "a JSON string", "ours, users not a list",
                                  "ours, a future version", "legacy, users not a list", "a folder", "missing",
                                  "../ out of DATA_DIR"])
def test_more_bad_backup_files_are_refused_with_the_reason(wiped_shop, bad_files, case):
    _demo, data_dir, _shop = wiped_shop
    path, words = bad_files[case]
    with pytest.raises((BackupFileError, RestoreError)) as caught:
        choose_backup(make_settings(data_dir, "http://127.0.0.1:9"), str(path))
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_a_backup_too_large_to_read_back_is_never_written(data_dir, monkeypatch):
    monkeypatch.setattr(store, "MAX_BACKUP_FILE_BYTES", 4096)
    customers = [{"id": f"c{j}", "name": f"Customer {j}", "orders": [{"comments": "x" * 100}]} for j in range(40)]
    snapshot = Snapshot.from_api([{"id": "u1", "email": "anna@example.com"}], {"u1": customers},
                                 {"created_at": utc_now_iso(), "mode": "babs10"})
    with pytest.raises(BackupFileError, match="over the 4096 a backup file may have: not written"):
        store.BackupStore(make_settings(data_dir)).record(snapshot)
    assert list(data_dir.rglob("*.json")) == []


# --- PIN files that others could read, or that are links ---

def test_unsafe_pin_files_are_refused_in_one_line_and_restore_nothing(wiped_shop, tmp_path):
    demo, data_dir, shop = wiped_shop
    pins = json.dumps({email: owner["pin"] for email, owner in shop.items()})
    cases = {}
    for mode in (0o640, 0o604, 0o660):  # 0644 is tried in test_restore_simple.py
        path = tmp_path / f"pins-{mode:04o}.json"
        path.write_text(pins)
        os.chmod(path, mode)
        cases[f"mode {mode:04o}"] = (path, f"is readable by others (mode {mode:04o}): chmod 600 it")
    private = tmp_path / "private-pins.json"
    private.write_text(pins)
    os.chmod(private, 0o600)
    (tmp_path / "pins-link.json").symlink_to(private)
    cases["a symlink to a private file"] = (tmp_path / "pins-link.json",
                                            "cannot be opened: Too many levels of symbolic links")
    before = files_under(data_dir)
    jobs = [(case, ("--yes",)) for case in cases] + [("a symlink to a private file", ("--dry-run",))]
    results = run_all([("restore_simple.py", args, command_env(data_dir, demo.url, PINS_FILE=str(cases[case][0])))
                       for case, args in jobs])
    problems = [f"{case} {args[0]}: {problem}" for (case, args), result in zip(jobs, results)
                if (problem := one_line_error(result, "restore_simple.py", f"PIN file {cases[case][0]} ",
                                              cases[case][1]))]
    assert not problems, "\n".join(problems)
    for result in results:
        assert only_the_backup_line(result.stdout), result.stdout
        assert not any(pin in result.stdout + result.stderr for pin in PINS), "a PIN reached the output"
    assert_nothing_changed(demo, data_dir, before)


# --- a DATA_DIR that cannot be made, a settings file that is wrong: one line from every command ---

SERVICES_AND_LAUNCHER = ["start_all_super_services.py", "keep_alive_super_aggressive.py",
                         "auto_backup_super_aggressive.py", "auto_restore_service.py"]
# /proc cannot hold a new folder (ENOENT, or EACCES when not root); /sys refuses one even to root (EPERM).
UNMAKEABLE = {"/proc/sleepguard-x/data": "/proc/sleepguard-x", "/sys/sleepguard-x/data": "/sys/sleepguard-x"}


@pytest.mark.parametrize("data_dir", list(UNMAKEABLE))
def test_a_data_dir_that_cannot_be_made_is_one_line_from_the_launcher_and_each_service(data_dir):
    env = command_env(data_dir, f"http://127.0.0.1:{free_port()}")
    results = run_all([(command, (), env) for command in SERVICES_AND_LAUNCHER])
    problems = [f"{command}: {problem}" for command, result in zip(SERVICES_AND_LAUNCHER, results)
                if (problem := one_line_error(result, command, f"cannot use {UNMAKEABLE[data_dir]}", "DATA_DIR"))]
    assert not problems, "\n".join(problems)
    assert all("Traceback" not in result.stderr and result.stdout == "" for result in results)
    assert not os.path.exists(UNMAKEABLE[data_dir])


def settings_file_cases(folder):
    """{case: (ENV_FILE, what the one line must say)}, the files written under folder."""
    latin1 = folder / "latin1.env"
    latin1.write_bytes("BACKEND_URL=http://127.0.0.1:9\n# Jörg's shop\n".encode("latin-1"))
    return {"not UTF-8": (latin1, f"settings file {latin1} is not UTF-8 text (byte 0xf6 on line 2): save it as UTF-8"),
            "missing": (folder / "typo.env", f"ENV_FILE {folder / 'typo.env'} does not exist: create it"),
            "a folder": (folder, f"settings file {folder} is a folder: point ENV_FILE at a file")}


def test_a_wrong_settings_file_is_one_line_from_every_command_and_changes_nothing(tmp_path, data_dir):
    cases = settings_file_cases(tmp_path)
    before = files_under(tmp_path)
    jobs = [(case, command) for case in cases for command in COMMANDS]
    results = run_all([(command, (), command_env(data_dir, "http://127.0.0.1:9", ENV_FILE=cases[case][0]))
                       for case, command in jobs])
    problems = [f"{case} via {command}: {problem}" for (case, command), result in zip(jobs, results)
                if (problem := one_line_error(result, command, cases[case][1]))]
    assert not problems, "\n".join(problems)
    assert all("Traceback" not in result.stderr and result.stdout == "" for result in results)
    assert files_under(tmp_path) == before, "a command wrote something despite a wrong settings file"


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770])
def test_a_data_dir_others_can_write_into_is_refused_by_every_command_and_left_as_it_is(tmp_path, mode):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    before = files_under(shared)
    results = run_all([(command, (), command_env(shared, "http://127.0.0.1:9")) for command in COMMANDS])
    problems = [f"{command}: {problem}" for command, result in zip(COMMANDS, results)
                if (problem := one_line_error(result, command, f"DATA_DIR {shared} is writable by",
                                              f"(mode {mode:04o})", f"chmod go-w {shared}"))]
    assert not problems, "\n".join(problems)
    assert files_under(shared) == before and stat.S_IMODE(shared.stat().st_mode) == mode
