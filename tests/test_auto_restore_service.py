"""The auto-restore command as its user runs it: help, one-line errors, and one copy at a time."""

from service_helpers import ServiceCommandChecks


class TestAutoRestoreCommand(ServiceCommandChecks):
    COMMAND = "auto_restore_service.py"
    SERVICE = "auto_restore_service"
    BAD_SETTING = "RESTORE_CHECK_INTERVAL"
