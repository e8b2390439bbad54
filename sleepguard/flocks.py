"""Advisory file locks without hanging: one try, or tries until a deadline."""

import errno
import fcntl
import time

# What flock answers when another process holds the lock (EACCES on some systems).
HELD_ELSEWHERE = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


def try_flock(fd, shared=False):
    """Take the lock on fd without blocking; False when another process holds it."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in HELD_ELSEWHERE:
            return False
        raise
    return True


def flock_within(fd, seconds, shared=False, poll=0.01):
    """Take the lock on fd, trying until seconds have passed; False when it was still held then."""
    deadline = time.monotonic() + seconds
    while not try_flock(fd, shared):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True
