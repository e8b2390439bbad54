"""The auto-restore command as its user runs it: help, one-line errors, and one copy at a time."""

from service_helpers import ServiceCommandChecks
from sleepguard.services import AUTO_RESTORE


class TestAutoRestoreCommand(ServiceCommandChecks):
    COMMAND = AUTO_RESTORE.command.name
    SERVICE = AUTO_RESTORE.name
    BAD_SETTING = "RESTORE_CHECK_INTERVAL"
