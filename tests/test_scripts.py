"""Every top-level command is a short, documented file with a test of its own (psutil's test_scripts idea)."""

import ast

import pytest

from helpers import COMMANDS, PROJECT_DIR, command_env, run_command

MAX_LINES = 45


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
