"""Say whether the shop's data is protected, why not, and the one command that fixes each reason.

usage: backup_status.py [--json | --test-alert]   (exit 0 PROTECTED, 1 WARNING, 2 NOT PROTECTED, 3 UNKNOWN)
       --test-alert: a test to every alert URL, e.g. "ntfy (3f2a): delivered"; exit 0 when each delivered
cron:  */10 * * * * cd /opt/sleepguard && .venv/bin/python backup_status.py >/dev/null || .venv/bin/python backup_status.py

$ python3 backup_status.py
PROTECTED (checked 13:58 CET)
  the services run, the backup is fresh and the back end holds its data
"""
from sleepguard.checkout_venv import use_checkout_venv
use_checkout_venv(missing_exit_code=3)  # first: a plain python3 runs .venv's; UNKNOWN without one
import argparse
import json
import sys

from sleepguard.command_errors import EXPECTED, error_exit
from sleepguard.demo_mode import load_settings_in_use
from sleepguard.logsetup import setup_command_logging
from sleepguard.status import collect_status, format_status
from sleepguard.verdict import UNKNOWN


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Bad arguments are UNKNOWN (3), not argparse's 2, which monitoring reads as NOT PROTECTED.
    parser.error = lambda message: parser.exit(UNKNOWN, f"{parser.prog}: error: {message}\n")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print the status and its verdict as JSON, for scripts")
    shown.add_argument("--test-alert", action="store_true", help="send a test message to every alert URL")
    args = parser.parse_args()
    try:
        # No line on stderr unless the status cannot be computed (cron mails any): the screen says "(demo)".
        settings = load_settings_in_use(quiet=True)
        setup_command_logging("ERROR")
        if args.test_alert:
            from sleepguard.alert_sender import test_alert_report  # apprise, only for this one-shot check
            lines, delivered = test_alert_report(settings)
            print("\n".join(lines))
            return 0 if delivered else 1
        status = collect_status(settings)
    except EXPECTED as exc:
        code, line = error_exit(parser.prog, exc)
        parser.exit(code if isinstance(exc, KeyboardInterrupt) or args.test_alert else UNKNOWN, line)
    print(json.dumps(status, indent=2, ensure_ascii=False) if args.json else format_status(status))
    return status["verdict"]["code"]


if __name__ == "__main__":
    sys.exit(main())
