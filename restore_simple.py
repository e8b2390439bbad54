"""Restore the back end now from the latest good backup, or forget the new PINs the owner handed out.
usage: restore_simple.py [--file PATH] [--owner EMAIL] [--dry-run] [--yes] | --pins-handed-out [EMAIL ...]
$ python3 restore_simple.py --yes   (Ctrl-C: stop, exit 130; twice: quit)
verified: the back end holds every user and customer of the backup
"""
import argparse
import sys

from sleepguard.apply import restore_now
from sleepguard.client import BackendClient
from sleepguard.exceptions import SleepguardError
from sleepguard.logsetup import setup_command_logging
from sleepguard.pins import hand_out_done
from sleepguard.settings import load_settings
from sleepguard.source import choose_backup
from sleepguard.terminal import Terminal
from sleepguard.wording import describe_report, error_line, handed_out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", help="restore from this backup in DATA_DIR (history or legacy file)")
    parser.add_argument("--owner", metavar="EMAIL", help="owner of a legacy file's customers when it has several users")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--pins-handed-out", nargs="*", metavar="EMAIL", help="they have their new PIN: forget it (everyone's when no EMAIL)")
    args = parser.parse_args()
    term = Terminal(parser.prog, ask=not args.yes)
    try:
        settings = load_settings()
        setup_command_logging()
        if args.pins_handed_out is not None:
            return print(handed_out(hand_out_done(settings.data_dir, args.pins_handed_out))) or 0
        backup, source = choose_backup(settings, args.file, args.owner)
        print(f"backup: {source}", flush=True)
        with BackendClient(settings) as client, term:
            report = restore_now(settings, backup, client, dry_run=args.dry_run, confirm=term.confirm, stopping=term.stopping)
    except (SleepguardError, OSError) as exc:  # OSError: a file it cannot write, as python-dotenv's cli does
        parser.exit(2, f"{parser.prog}: error: {error_line(exc)}\n")
    print("\n".join(describe_report(report)))
    return 0 if args.dry_run or report.complete else 130 if report.interrupted else 1  # 130: stopped by Ctrl-C


if __name__ == "__main__":
    sys.exit(main())
