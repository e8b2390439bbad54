"""The one line and exit code a command gives for an error it expects, so no input ends in a traceback.

A command catches EXPECTED around its work and exits with ``parser.exit(*error_exit(parser.prog, exc))``:
SleepguardError says itself what is wrong and what to do; an OSError (a folder that cannot be made,
a full or read-only disk) gets a hint by its errno, as python-dotenv's own command line catches it.
"""

import errno
import os
import sys

from .exceptions import SleepguardError

EXPECTED = (SleepguardError, OSError, KeyboardInterrupt)
ERROR_EXIT = 2
# The shell's code for a process ended by SIGINT (128 + 2).
INTERRUPTED_EXIT = 130

_CHECK_PATHS = "check DATA_DIR and the other paths in the settings"
OS_ERROR_HINTS = {
    errno.ENOENT: f"a folder on the way is missing or cannot hold files: {_CHECK_PATHS}",
    errno.ENOTDIR: f"part of that path is a file, not a folder: {_CHECK_PATHS}",
    errno.EACCES: "this user may not write there: choose a DATA_DIR it owns, or fix the permissions",
    errno.EPERM: "this user may not write there: choose a DATA_DIR it owns, or fix the permissions",
    errno.EROFS: "that disk is read-only: choose a DATA_DIR on a writable disk",
    errno.ENOSPC: "the disk is full: free some space and run it again",
    errno.EDQUOT: "the disk quota is used up: free some space and run it again",
    errno.EFBIG: "a file size limit (ulimit -f) is in the way: raise it and run it again",
}


def os_error_text(exc):
    """What an OSError means for the owner, in one line: the path, the system's reason, what to do."""
    where = f" {exc.filename}" if exc.filename else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    hint = OS_ERROR_HINTS.get(exc.errno, f"{_CHECK_PATHS} and their permissions")
    return f"cannot use{where}: {reason}; {hint}"


def error_exit(prog, exc):
    """(exit code, the one line to print) for an exception of EXPECTED."""
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED_EXIT, (f"{prog}: interrupted: every file is written whole or not at all, "
                                  f"so it is safe to run it again\n")
    text = os_error_text(exc) if isinstance(exc, OSError) else str(exc)
    # One line even when a message carries several (a log tail after it), so scripts and logs read it whole.
    line = " / ".join(part.strip() for part in text.splitlines() if part.strip()) or type(exc).__name__
    return ERROR_EXIT, f"{prog}: error: {line}\n"


def _quiet_ending(kind, value, traceback):
    """What no `except` of the command caught: Ctrl-C at any moment and a closed pipe end it with no traceback."""
    if issubclass(kind, KeyboardInterrupt):
        # Pressed while the command still imports its modules, before its own `except` is there.
        sys.stderr.write(error_exit(os.path.basename(sys.argv[0]), value)[1])
        return  # Python then ends the process by SIGINT, which a shell shows as 130
    if issubclass(kind, BrokenPipeError):
        # `backup_status.py | head` closed the pipe early. Python flushes stdout once more on its way out: let
        # that go nowhere instead of failing again; exit code 1, as any error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    sys.__excepthook__(kind, value, traceback)


def quiet_endings():
    """From now on, Ctrl-C and a reader that stops reading (a pipe into head) end the command quietly."""
    sys.excepthook = _quiet_ending
