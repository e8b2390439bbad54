"""Show on one screen whether the shop's data is protected: back end, services, backups, warnings.

usage: backup_status.py [--json | --test-alert]   (exit 0: protected, 1: not protected, 2: bad settings)
       --test-alert: a test to every alert URL, e.g. "ntfy (3f2a): delivered"; exit 0 when each delivered

$ python3 backup_status.py
back end     https://babs10.onrender.com  reachable, healthy, 212 ms
last backup  data_backup.json: 3 users, 40 customers, 52 orders, checksum ok
PROTECTED
"""
import argparse
import json
import sys

from sleepguard.alert_sender import test_alert_report
from sleepguard.command_errors import EXPECTED, error_exit
from sleepguard.demo_mode import load_settings_in_use
from sleepguard.logsetup import setup_command_logging
from sleepguard.status import collect_status, format_status


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print the status as JSON, for scripts")
    shown.add_argument("--test-alert", action="store_true", help="send a test message to every alert URL")
    args = parser.parse_args()
    try:
        # No line on stderr (cron mails any): the screen's "(demo)" says the demo is used.
        settings = load_settings_in_use(quiet=True)
        setup_command_logging()
        if args.test_alert:
            lines, delivered = test_alert_report(settings)
            print("\n".join(lines))
            return 0 if delivered else 1
        status = collect_status(settings)
    except EXPECTED as exc:
        parser.exit(*error_exit(parser.prog, exc))
    print(json.dumps(status, indent=2, ensure_ascii=False) if args.json else format_status(status))
    return 0 if status["protected"] else 1


if __name__ == "__main__":
    sys.exit(main())
