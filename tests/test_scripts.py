"""Every top-level command is a short, documented file with a test of its own (psutil's test_scripts idea)."""

import ast
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

from helpers import COMMANDS, PROJECT_DIR, command_env, run_command

MAX_LINES = 60


def test_the_seven_commands_and_no_others_sit_at_the_top():
    assert sorted(p.name for p in PROJECT_DIR.glob("*.py")) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_a_test_file_of_its_own(command):
    test_file = PROJECT_DIR / "tests" / f"test_{command[:-3]}.py"
    assert test_file.is_file(), f"{command} has no test of its own: write {test_file.name}"


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_is_short_and_documented(command):
    source = (PROJECT_DIR / command).read_text()
    assert len(source.splitlines()) <= MAX_LINES, f"{command} is longer than {MAX_LINES} lines: move logic into sleepguard/"
    docstring = ast.get_docstring(ast.parse(source))
    assert docstring and "usage" in docstring.lower(), f"{command}'s docstring must give its usage and a sample"
    assert source.rstrip().endswith("sys.exit(main())")


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_answers_help_in_a_subprocess(command, data_dir):
    result = run_command(command, "--help", env=command_env(data_dir))
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_refuses_a_bad_setting_with_one_line(command, data_dir):
    result = run_command(command, env=command_env(data_dir, BACKUP_INTERVAL="soon"))
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "BACKUP_INTERVAL" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def never_answers():
    """A loopback server that accepts connections and never answers; yields (URL, an Event set on each accept)."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted, held = threading.Event(), []

    def accept():
        while True:
            try:
                connection, _address = server.accept()
            except OSError:
                return
            held.append(connection)
            accepted.set()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    server.close()
    for connection in held:
        connection.close()


@pytest.mark.parametrize("command", ["manual_backup.py", "backup_status.py"])
def test_ctrl_c_while_a_command_waits_for_the_back_end_is_one_line(command, data_dir, never_answers):
    url, accepted = never_answers
    # A suite started in the background (`pytest &` without job control) ignores SIGINT, and a command it starts
    # would inherit that: a handler here, even for a moment, makes the command start with the default instead.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen([sys.executable, str(PROJECT_DIR / command)], cwd=PROJECT_DIR,
                                   env=command_env(data_dir, url, READ_TIMEOUT=60), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        assert accepted.wait(30), "the command never called the back end"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 130, (stdout, stderr)
    assert stderr == f"{command}: interrupted: every file is written whole or not at all, so it is safe to run it again\n"
    assert stdout == "" and list(data_dir.iterdir()) == []


# Runs the command as python would, with a Ctrl-C the moment it imports python-dotenv: while it starts, before its own
# `except` is there (a second or more on a Raspberry Pi).
CTRL_C_WHILE_IMPORTING = """import os, runpy, signal, sys
sys.addaudithook(lambda event, args: event == "import" and args[0] == "dotenv" and os.kill(os.getpid(), signal.SIGINT))
sys.argv = [sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("command", COMMANDS)
def test_ctrl_c_while_a_command_starts_is_one_line_and_no_traceback(command, data_dir):
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # the default in the child, as above
    try:
        result = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_IMPORTING, str(PROJECT_DIR / command)],
                                cwd=PROJECT_DIR, env=command_env(data_dir), stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=60)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.returncode == -signal.SIGINT, result.stderr  # ended by SIGINT: a shell says 130
    assert result.stderr == (f"{command}: interrupted: every file is written whole or not at all, so it is safe "
                             "to run it again\n")
    assert result.stdout == "" and list(data_dir.iterdir()) == []


@pytest.mark.parametrize("command, args", [("backup_status.py", ()), ("manual_backup.py", ("--list",)),
                                           ("restore_simple.py", ("--pins-handed-out",)),
                                           ("start_all_super_services.py", ("--stop",))])
def test_a_reader_that_stopped_reading_ends_the_command_quietly(command, args, data_dir):
    # `backup_status.py | head`: the pipe is closed before the command writes a word.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([sys.executable, str(PROJECT_DIR / command), *args], cwd=PROJECT_DIR,
                                env=command_env(data_dir), stdin=subprocess.DEVNULL, stdout=write_end,
                                stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
