"""The keep-alive command as its user runs it: help, one-line errors, and one copy at a time."""

from service_helpers import ServiceCommandChecks


class TestKeepAliveCommand(ServiceCommandChecks):
    COMMAND = "keep_alive_super_aggressive.py"
    SERVICE = "keep_alive_super_aggressive"
    BAD_SETTING = "KEEP_ALIVE_INTERVAL"
