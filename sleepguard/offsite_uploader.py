"""The off-site uploader, a short-lived process: drain the queue in order, then prune the remote, then exit.

Run as `python3 -m sleepguard.offsite_uploader` (the services start it after queueing a copy),
so the S3 client's memory never lives in the three long-running services. It logs to
DATA_DIR/offsite_uploader.log; exit 0 when nothing waits, 1 when copies still wait or it
could not run.
"""

import logging
import sys

from .atomicfile import ensure_private_dir
from .exceptions import OffsiteError, SleepguardError
from .logsetup import setup_command_logging, setup_service_logging
from .offsite_copies import apply_remote_retention, drain_queue
from .offsite_queue import LOG_NAME
from .settings import load_settings

log = logging.getLogger(__name__)


def upload(settings):
    """One run: drain the queue, then apply retention to the remote when the store took everything."""
    report = drain_queue(settings)
    if report.busy:
        log.info("another uploader is running: it will upload the %d waiting copies", report.waiting)
        return 0
    if report.problem:
        return 1
    try:
        apply_remote_retention(settings)
    except OffsiteError as exc:
        log.warning("off-site retention not applied this time: %s", exc)
    return 1 if report.waiting else 0


def main():
    """Load the settings, log to DATA_DIR/offsite_uploader.log, run once; a bad setting is one logged line."""
    try:
        settings = load_settings()
    except SleepguardError as exc:
        setup_command_logging()
        log.error("offsite uploader: %s", exc)
        return 1
    setup_service_logging(ensure_private_dir(settings.data_dir) / LOG_NAME, settings.log_max_bytes,
                          settings.log_backup_count, settings.log_level)
    return upload(settings)


if __name__ == "__main__":
    sys.exit(main())
