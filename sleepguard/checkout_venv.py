"""A command started by another python (a plain `python3 x.py`) runs again with the checkout's own .venv.

The README installs the dependencies into .venv (stock Debian refuses a bare pip install), while
every fix the status and the alerts suggest, the cron line and each command's usage say
`python3 …`; that python3 lacks requests and would end in a traceback. Standard library only:
a command calls use_checkout_venv() before it imports anything that needs the dependencies.
"""

import os
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent.parent / ".venv"
# Set for the run started here, so a .venv whose python is not what it claims can never loop.
AGAIN = "SLEEPGUARD_RUN_IN_VENV"


def use_checkout_venv():
    """Replace this process with the same command under .venv/bin/python, when that exists and is not running it."""
    python = VENV / "bin" / "python"
    if os.environ.get(AGAIN) or not python.exists() or Path(sys.prefix).resolve() == VENV.resolve():
        return
    os.environ[AGAIN] = "1"
    try:
        os.execv(python, [str(python), *sys.argv])  # not the other python's options (-S, -I) but its command
    except OSError:
        pass  # a broken .venv: go on with this python, which says what is missing
