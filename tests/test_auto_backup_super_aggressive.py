"""The auto-backup command as its user runs it: help, one-line errors, and one copy at a time."""

from service_helpers import ServiceCommandChecks


class TestAutoBackupCommand(ServiceCommandChecks):
    COMMAND = "auto_backup_super_aggressive.py"
    SERVICE = "auto_backup_super_aggressive"
    BAD_SETTING = "BACKUP_INTERVAL"
