"""Take one backup of the back end now, list the backups kept, or check and key the off-site copies.

usage: manual_backup.py [--list] [--accept-shrink | --accept-current] [--offsite-check] [--offsite-keygen [FILE]]
       (exit 0: good or unchanged, 1: held or failed or no good off-site copy, 2: error)
$ python3 manual_backup.py
backup good: 3 users, 40 customers, 52 orders in 0.84 s → backup-20261129T015105.123456Z-1a2b3c4d.json (first)
$ python3 manual_backup.py --list
time (UTC)           kind    users  customers     size  file                                          checksum
2026-11-29 01:51:05  latest      3         40  21.4 kB  data_backup.json                              ok
$ python3 manual_backup.py --offsite-check
good  backup-20261129T015105.123456Z-0123456789abcdef.age: checksum ok: 3 users, 40 customers, 52 orders (latest)
off-site: 1 good copy of 1 checked
"""
from sleepguard.checkout_venv import use_checkout_venv
use_checkout_venv()  # first: a plain `python3 <command>` runs again with the checkout's .venv/bin/python
import argparse
import sys

from sleepguard.command_errors import EXPECTED, error_exit
from sleepguard.demo_mode import load_settings_in_use
from sleepguard.logsetup import setup_command_logging
from sleepguard.manual import run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", dest="list_only", action="store_true", help="list every backup file with its checksum check")
    parser.add_argument("--accept-shrink", action="store_true", help="promote this read despite a large drop")
    parser.add_argument("--accept-current", action="store_true",
                        help="adopt the back end as it is (one the backup does not know): a new good backup of it")
    parser.add_argument("--offsite-check", action="store_true", help="download, decrypt and verify every off-site copy")
    parser.add_argument("--offsite-keygen", nargs="?", const="", metavar="FILE",
                        help="write a new age identity file (default OFFSITE_IDENTITY_FILE) and print its public key")
    args = parser.parse_args()
    try:
        setup_command_logging()
        settings = load_settings_in_use()
        text, code = run(settings, **vars(args))
    except EXPECTED as exc:
        parser.exit(*error_exit(parser.prog, exc))
    print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
