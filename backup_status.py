"""Show on one screen whether the shop's data is protected: back end, services, backups, warnings.

usage: backup_status.py [--json | --test-alert]   (exit 0: protected, 1: not protected, 2: bad settings)
       --test-alert: send a test to every alert URL; exit 0 only when each delivered

$ python3 backup_status.py --test-alert
ntfy (3f2a): delivered
mailtos (91c0): NOT delivered: failure: SMTP login refused

$ python3 backup_status.py
back end     https://babs10.onrender.com  reachable, healthy, 212 ms
last backup  data_backup.json: 3 users, 40 customers, 52 orders, checksum ok
PROTECTED
"""
import argparse
import json
import sys

from sleepguard.alert_sender import test_alert
from sleepguard.command_errors import EXPECTED, error_exit
from sleepguard.exceptions import AlertError
from sleepguard.logsetup import setup_command_logging
from sleepguard.settings import load_settings
from sleepguard.status import collect_status, format_status
from sleepguard.wording import NO_ALERT_URLS, test_alert_lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print the status as JSON, for scripts")
    shown.add_argument("--test-alert", action="store_true", help="send a test message to every alert URL")
    args = parser.parse_args()
    try:
        settings = load_settings()
        setup_command_logging()
        if args.test_alert:
            results = test_alert(settings)
            if not results:
                raise AlertError(NO_ALERT_URLS)
            print("\n".join(test_alert_lines(results)))
            return 0 if all(result.delivered for result in results) else 1
        status = collect_status(settings)
    except EXPECTED as exc:
        parser.exit(*error_exit(parser.prog, exc))
    print(json.dumps(status, indent=2, ensure_ascii=False) if args.json else format_status(status))
    return 0 if status["protected"] else 1


if __name__ == "__main__":
    sys.exit(main())
