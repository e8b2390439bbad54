"""Watch for a wipe every RESTORE_CHECK_INTERVAL (at once when woken) and restore it from the newest good backup.

usage: auto_restore_service.py   (runs until SIGTERM; logs to DATA_DIR/auto_restore.log)

$ tail DATA_DIR/auto_restore.log
2026-11-29 01:53:05,341 INFO back end state unknown: GET /api/users: host answered 502 (asleep or restarting); no restore
2026-11-29 01:55:41,010 INFO woken by SIGUSR1
2026-11-29 01:55:41,120 WARNING wipe detected: 3 users and 40 customers of the last good backup are missing and none of its records survived: the back end was wiped; restoring from /srv/sleepguard/data_backup.json
2026-11-29 01:55:42,331 INFO restore: 3 users, 40 customers created, 0 failed in 1.2 s; verified complete; 2 users need their new PIN: a@example.com, b@example.com; asked the backup service for a fresh backup
"""
from sleepguard.checkout_venv import use_checkout_venv
use_checkout_venv()  # first: a plain `python3 <command>` runs again with the checkout's .venv/bin/python
import argparse
import sys

from sleepguard import auto_restore
from sleepguard.command_errors import EXPECTED, error_exit
from sleepguard.settings import load_settings, require_backend


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    try:
        settings = load_settings()
        require_backend(settings)
        return auto_restore.run(settings)
    except EXPECTED as exc:
        parser.exit(*error_exit(parser.prog, exc))


if __name__ == "__main__":
    sys.exit(main())
