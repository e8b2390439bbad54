"""The exceptions sleepguard raises: one family, each saying what went wrong."""


class SleepguardError(Exception):
    """Base of every error sleepguard raises on purpose."""


class SettingsError(SleepguardError):
    """A setting has a value it does not accept."""


class BackendError(SleepguardError):
    """The back end could not give a trustworthy answer: its state is unknown."""


class BackendUnreachable(BackendError):
    """No answer at all: refused, reset, timed out, or the host is asleep."""


class BadAnswer(BackendError):
    """An answer came, but not a well-formed one of the expected form."""


class RestartedDuringRead(BadAnswer):
    """Users listed when a read began were gone at its end: the back end restarted meanwhile, maybe empty."""


class AnswerTooLarge(BadAnswer):
    """The answer was larger than the configured cap."""


class BackendRejected(BackendError):
    """The back end understood the request and refused it (a 4xx that is not a quirk)."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class BackupFileError(SleepguardError):
    """A backup file is missing, truncated, not ours, or fails its checksum."""


class ServiceAlreadyRunning(SleepguardError):
    """Another copy of the same service holds its PID file."""


class PinFileError(SleepguardError):
    """The owner's PIN file is unsafe or malformed."""


class RestoreError(SleepguardError):
    """A restore could not be planned or carried out."""


class RestoreRunning(RestoreError):
    """Another restore of this DATA_DIR is running: a second one beside it would race it."""

    def __init__(self, message, pid=None):
        super().__init__(message)
        self.pid = pid


class OffsiteError(SleepguardError):
    """The off-site store, its settings, the age keys or a remote copy are not usable."""


class AlertError(SleepguardError):
    """The alert outbox cannot be read or written, or an alert is malformed."""
