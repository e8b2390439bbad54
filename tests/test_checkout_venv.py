"""A command started with a python that is not the checkout's .venv runs again under .venv/bin/python, once.

Real processes: a copy of the module in a temporary checkout, a real venv made there (no pip: it only has
to be a python whose sys.prefix is that .venv), and a command that says which python ran it.
"""

import os
import shutil
import subprocess
import sys
import venv

import pytest

from helpers import PROJECT_DIR
from sleepguard.checkout_venv import AGAIN

COMMAND = """from sleepguard.checkout_venv import use_checkout_venv
use_checkout_venv()
import sys
print(sys.prefix, sys.argv[1:])
"""


@pytest.fixture
def checkout(tmp_path):
    """A checkout of one command and the modules it needs first; the test makes its .venv when it wants one."""
    (tmp_path / "sleepguard").mkdir()
    (tmp_path / "sleepguard" / "__init__.py").write_text("")
    for module in ("checkout_venv.py", "command_errors.py", "exceptions.py"):
        shutil.copy(PROJECT_DIR / "sleepguard" / module, tmp_path / "sleepguard")
    (tmp_path / "command.py").write_text(COMMAND)
    return tmp_path


def make_venv(checkout):
    """A .venv with no pip that sees this python's dependencies (a .pth file), as an installed checkout's does."""
    venv.create(checkout / ".venv", with_pip=False)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    installed = next(path for path in sys.path if path.endswith("site-packages"))
    (checkout / ".venv" / "lib" / version / "site-packages" / "dependencies.pth").write_text(installed + "\n")


def run(checkout, python, *args, **env):
    environ = {k: v for k, v in os.environ.items() if k != AGAIN}
    done = subprocess.run([python, "command.py", *args], cwd=checkout, env={**environ, **env}, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout


def test_a_plain_python3_runs_the_command_again_with_the_checkouts_venv_and_its_arguments(checkout):
    make_venv(checkout)
    assert run(checkout, sys.executable, "a", "b c") == f"{checkout / '.venv'} ['a', 'b c']\n"
    # Started with .venv/bin/python itself: it just runs.
    assert run(checkout, str(checkout / ".venv" / "bin" / "python"), "x") == f"{checkout / '.venv'} ['x']\n"


def test_without_a_venv_or_once_already_run_again_the_command_runs_as_it_was_started(checkout):
    assert run(checkout, sys.executable, "a") == f"{sys.prefix} ['a']\n"
    make_venv(checkout)
    assert run(checkout, sys.executable, "a", **{AGAIN: "1"}) == f"{sys.prefix} ['a']\n"


@pytest.mark.parametrize("call, code", [("use_checkout_venv()", 1), ("use_checkout_venv(missing_exit_code=3)", 3)])
def test_with_no_venv_and_no_dependencies_the_command_says_how_to_set_up_in_one_line(checkout, call, code):
    (checkout / "command.py").write_text(COMMAND.replace("use_checkout_venv()", call))
    environ = {k: v for k, v in os.environ.items() if k != AGAIN}
    # -S: this python without its site-packages, as a stock python3 with nothing installed.
    done = subprocess.run([sys.executable, "-S", "command.py"], cwd=checkout, env=environ, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == code and done.stdout == ""
    assert done.stderr == (f"command.py: error: requests, dotenv, psutil, email_validator not installed for "
                           f"{sys.executable}; set the checkout up as the README says, in {checkout}: "
                           "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt\n")
