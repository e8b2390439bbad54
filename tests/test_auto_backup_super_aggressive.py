"""The auto-backup command as its user runs it: help, one-line errors, and one copy at a time."""

from service_helpers import ServiceCommandChecks
from sleepguard.services import AUTO_BACKUP


class TestAutoBackupCommand(ServiceCommandChecks):
    COMMAND = AUTO_BACKUP.command.name
    SERVICE = AUTO_BACKUP.name
    BAD_SETTING = "BACKUP_INTERVAL"
