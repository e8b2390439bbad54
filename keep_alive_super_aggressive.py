"""Ping the back end every KEEP_ALIVE_INTERVAL so the host never sleeps; wake the restore service when it came back.

usage: keep_alive_super_aggressive.py   (runs until SIGTERM; logs to DATA_DIR/keep_alive_super_aggressive.log)

$ tail DATA_DIR/keep_alive_super_aggressive.log
2026-11-29 01:51:05,120 INFO health ok in 0.214 s
2026-11-29 01:53:05,341 INFO health check failed (1 in a row): GET /api/health: host answered 502 (asleep or restarting)
2026-11-29 01:55:41,007 WARNING back end answered again after 1 failure; woke the restore service
2026-11-29 01:55:41,008 INFO health ok in 36.102 s (slow)
"""
from sleepguard.checkout_venv import use_checkout_venv
use_checkout_venv()  # first: a plain `python3 <command>` runs again with the checkout's .venv/bin/python
import argparse
import sys

from sleepguard import keep_alive
from sleepguard.command_errors import EXPECTED, error_exit
from sleepguard.settings import load_settings, require_backend


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    try:
        settings = load_settings()
        require_backend(settings)
        return keep_alive.run(settings)
    except EXPECTED as exc:
        parser.exit(*error_exit(parser.prog, exc))


if __name__ == "__main__":
    sys.exit(main())
