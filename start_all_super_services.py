"""Start the three sleepguard services detached, each with a verified PID file and its own log.

usage: start_all_super_services.py [--stop | --restart | --foreground | --fresh-demo] [--demo]

$ python3 start_all_super_services.py
service                       PID    state    log file
keep_alive_super_aggressive   41230  started  keep_alive_super_aggressive.log
"""
from sleepguard.checkout_venv import use_checkout_venv
use_checkout_venv()  # first: a plain `python3 <command>` runs again with the checkout's .venv/bin/python
import argparse
import sys

from sleepguard import launcher
from sleepguard.command_errors import EXPECTED, error_exit
from sleepguard.logsetup import setup_command_logging
from sleepguard.settings import load_settings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--stop", action="store_true", help="stop the services and the demo back end")
    action.add_argument("--restart", action="store_true", help="stop the services, then start them")
    action.add_argument("--foreground", action="store_true", help="run them as children, restarting crashed ones")
    parser.add_argument("--demo", action="store_true", help="also start the demo back end and use it")
    action.add_argument("--fresh-demo", action="store_true", help="restart on a newly seeded demo with a new token")
    args = parser.parse_args()
    try:
        settings = load_settings()
        setup_command_logging("INFO" if args.foreground else "WARNING")
        if args.foreground:
            return launcher.run_foreground(settings, demo=args.demo)
        if args.stop:
            report = launcher.stop_services(settings)
        else:
            start = launcher.restart_services if args.restart else launcher.start_services
            report = start(settings, demo=args.demo, fresh=args.fresh_demo)
    except EXPECTED as exc:
        parser.exit(*error_exit(parser.prog, exc))
    print("\n".join(report.lines))
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
