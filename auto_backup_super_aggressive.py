"""Back up the back end every BACKUP_INTERVAL, and within TRIGGER_POLL_INTERVAL of every save the app reports.

usage: auto_backup_super_aggressive.py   (runs until SIGTERM; logs to DATA_DIR/auto_backup_super_aggressive.log)

$ tail DATA_DIR/auto_backup_super_aggressive.log
2026-11-29 01:51:05,120 INFO backup good: 3 users, 40 customers, 52 orders in 0.84 s → backup-20261129T015105.123456Z-1a2b3c4d.json (nothing of the last good backup is missing) [the app saved something]
2026-11-29 01:51:20,007 INFO nothing saved since the last backup; next one in 105.1 s
2026-11-29 01:53:05,341 INFO back end restarted (trigger count 12 -> 0): woke the restore service; no backup of this state
"""
from sleepguard.checkout_venv import use_checkout_venv
use_checkout_venv()  # first: a plain `python3 <command>` runs again with the checkout's .venv/bin/python
import argparse
import sys

from sleepguard import auto_backup
from sleepguard.command_errors import EXPECTED, error_exit
from sleepguard.settings import load_settings, require_backend


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    try:
        settings = load_settings()
        require_backend(settings)
        return auto_backup.run(settings)
    except EXPECTED as exc:
        parser.exit(*error_exit(parser.prog, exc))


if __name__ == "__main__":
    sys.exit(main())
