"""A command started by another python (a plain `python3 x.py`) runs again with the checkout's own .venv.

The README installs the dependencies into .venv (stock Debian refuses a bare pip install), while
every fix the status and the alerts suggest, the cron line and each command's usage say
`python3 …`; that python3 lacks requests and would end in a traceback. Standard library only:
a command calls use_checkout_venv() before it imports anything that needs the dependencies.
With no .venv and the dependencies missing, it ends the command with one line saying how to
set up, as the command layer would: nothing else can run yet to say it. It also makes Ctrl-C
quiet from the first moment (command_errors.quiet_endings), while the command still imports.
"""

import importlib.util
import os
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent.parent / ".venv"
# Set for the run started here, so a .venv whose python is not what it claims can never loop.
AGAIN = "SLEEPGUARD_RUN_IN_VENV"
# What every command imports at its start; the others (apprise, bcrypt, pyrage, minio) are imported where used.
NEEDED = ("requests", "dotenv", "psutil", "email_validator")
SETUP = "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt"


def use_checkout_venv(missing_exit_code=1):
    """Run this command under .venv/bin/python when that exists; exit with the setup line when nothing can run it."""
    from .command_errors import quiet_endings  # standard library only, as this module
    quiet_endings()
    python = VENV / "bin" / "python"
    if not (os.environ.get(AGAIN) or not python.exists() or Path(sys.prefix).resolve() == VENV.resolve()):
        os.environ[AGAIN] = "1"
        try:
            os.execv(python, [str(python), *sys.argv])  # not the other python's options (-S, -I) but its command
        except OSError:
            pass  # a broken .venv: go on with this python, and say below what it lacks
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        print(f"{Path(sys.argv[0]).name}: error: {', '.join(missing)} not installed for {sys.executable}; "
              f"set the checkout up as the README says, in {VENV.parent}: {SETUP}", file=sys.stderr)
        sys.exit(missing_exit_code)
