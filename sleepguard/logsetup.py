"""Logging set-up: size-rotated private log files for services, stderr for commands."""

import logging
import logging.handlers
import os
import sys
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
# Marks the handlers we installed, so a second call replaces nothing and adds nothing.
_HANDLER_MARK = "_sleepguard_handler"


def _installed_handler(root: logging.Logger) -> logging.Handler | None:
    """Return the handler an earlier set-up call put on the root logger, if any."""
    for handler in root.handlers:
        if getattr(handler, _HANDLER_MARK, False):
            return handler
    return None


def _install(handler: logging.Handler, level: str) -> None:
    """Put handler on the root logger with our format and set the level."""
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level.upper())


def setup_service_logging(log_path: Path, max_bytes: int, backup_count: int, level: str = "INFO") -> None:
    """Log to a 0600 file rotated by size, so a service's logs stay bounded on disk."""
    root = logging.getLogger()
    if _installed_handler(root) is not None:
        root.setLevel(level.upper())
        return
    # Rotated files are created by the handler later; the umask keeps them private too.
    os.umask(0o077)
    log_path = Path(log_path)
    handler = logging.handlers.RotatingFileHandler(
        log_path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
    )
    os.chmod(log_path, 0o600)
    _install(handler, level)


def setup_command_logging(level: str = "WARNING") -> None:
    """Log to stderr for the one-shot commands, warnings and worse unless asked otherwise."""
    root = logging.getLogger()
    if _installed_handler(root) is not None:
        root.setLevel(level.upper())
        return
    _install(logging.StreamHandler(sys.stderr), level)
