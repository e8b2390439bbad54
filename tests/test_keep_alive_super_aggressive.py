"""The keep-alive command as its user runs it: help, one-line errors, and one copy at a time."""

from service_helpers import ServiceCommandChecks
from sleepguard.services import KEEP_ALIVE


class TestKeepAliveCommand(ServiceCommandChecks):
    COMMAND = KEEP_ALIVE.command.name
    SERVICE = KEEP_ALIVE.name
    BAD_SETTING = "KEEP_ALIVE_INTERVAL"
