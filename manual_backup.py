"""Take one backup of the back end now, or list the backups kept.

usage: manual_backup.py [--list] [--accept-shrink | --accept-current]   (exit 0: good/unchanged, 1: held/failed, 2: error)

$ python3 manual_backup.py
backup good: 3 users, 40 customers, 52 orders in 0.84 s → backup-20261129T015105.123456Z-1a2b3c4d.json (first)
$ python3 manual_backup.py --list
time (UTC)           kind    users  customers     size  file                                          checksum
2026-11-29 01:51:05  latest      3         40  21.4 kB  data_backup.json                              ok
"""
import argparse
import sys

from sleepguard.backup import take_backup
from sleepguard.client import BackendClient
from sleepguard.command_errors import EXPECTED, error_exit
from sleepguard.logsetup import setup_command_logging
from sleepguard.settings import load_settings
from sleepguard.store import BackupStore
from sleepguard.wording import describe, format_backup_list


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list every backup file with its checksum check")
    parser.add_argument("--accept-shrink", action="store_true", help="promote this read despite a large drop")
    parser.add_argument("--accept-current", action="store_true",
                        help="adopt the back end as it is (one the backup does not know): a new good backup of it")
    args = parser.parse_args()
    try:
        settings = load_settings()
        setup_command_logging()
        if args.list:
            print(format_backup_list(BackupStore(settings).list_backups()))
            return 0
        with BackendClient(settings) as client:
            outcome = take_backup(settings, client, accept_shrink=args.accept_shrink, accept_current=args.accept_current)
    except EXPECTED as exc:
        parser.exit(*error_exit(parser.prog, exc))
    print(describe(outcome))
    return 0 if outcome.kind in ("good", "unchanged") else 1


if __name__ == "__main__":
    sys.exit(main())
