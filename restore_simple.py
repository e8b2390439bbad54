"""Restore the back end now from the latest good backup (or an off-site copy), or forget new PINs handed out.

usage: restore_simple.py [--file PATH | --from-offsite [--at TIME]] [--owner EMAIL] [--dry-run] [--yes]
       restore_simple.py --pins-handed-out [EMAIL ...]
       (exit 0: done or dry run, 1: not complete, 2: error, 130: stopped by Ctrl-C; a second Ctrl-C quits)

$ python3 restore_simple.py
backup: /srv/sleepguard/data_backup.json (3 users, 40 customers, 52 orders)
Restore 3 users and 40 customers into https://babs10.onrender.com? [y/N] y
restore: 3 users, 40 customers created, 0 failed in 1.2 s; first owner (a***a@gmail.com) back after 0.4 s
verified: the back end holds every user and customer of the backup
"""
from sleepguard.checkout_venv import use_checkout_venv
use_checkout_venv()  # first: a plain `python3 <command>` runs again with the checkout's .venv/bin/python
import argparse
import sys

from sleepguard.apply import restore_now
from sleepguard.client import BackendClient
from sleepguard.demo_mode import load_settings_in_use
from sleepguard.exceptions import SleepguardError
from sleepguard.logsetup import setup_command_logging
from sleepguard.pins import hand_out_done
from sleepguard.source import choose_backup
from sleepguard.terminal import Terminal
from sleepguard.wording import describe_report, error_line, handed_out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", help="restore from this backup in DATA_DIR (history or legacy file)")
    parser.add_argument("--from-offsite", action="store_true", help="restore from the newest good off-site copy")
    parser.add_argument("--at", metavar="TIME", help="with --from-offsite: the newest copy taken at or before TIME")
    parser.add_argument("--owner", metavar="EMAIL", help="owner of a legacy file's customers when it has several users")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--pins-handed-out", nargs="*", metavar="EMAIL", help="forget PINs handed out (all: no EMAIL)")
    args = parser.parse_args()
    term = Terminal(parser.prog, ask=not args.yes)
    try:
        setup_command_logging()
        settings = load_settings_in_use()
        if args.pins_handed_out is not None:
            print(handed_out(hand_out_done(settings.data_dir, args.pins_handed_out)))
            return 0
        backup, source, carried_pins = choose_backup(settings, args.file, args.owner, args.from_offsite, args.at)
        print(f"backup: {source}", flush=True)
        with BackendClient(settings) as client, term:
            report = restore_now(settings, backup, client, dry_run=args.dry_run, confirm=term.confirm,
                                 stopping=term.stopping, carried_pins=carried_pins)
    except (SleepguardError, OSError) as exc:  # OSError: a file it cannot write, as python-dotenv's cli does
        parser.exit(2, f"{parser.prog}: error: {error_line(exc)}\n")
    print("\n".join(describe_report(report)))
    return 0 if args.dry_run or report.complete else 130 if report.interrupted else 1  # 130: stopped by Ctrl-C


if __name__ == "__main__":
    sys.exit(main())
