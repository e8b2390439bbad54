"""File locks: one try never blocks, tries until a deadline give up in time."""

import os
import threading

from sleepguard.flocks import flock_within, try_flock


def open_twice(path):
    """Two open file descriptions of one file: flock treats them as two holders, as two processes would be."""
    return [os.open(path, os.O_RDWR | os.O_CREAT) for _ in range(2)]


def test_an_exclusive_lock_keeps_out_every_other_holder_and_shared_ones_share(tmp_path):
    first, second = open_twice(tmp_path / "lock")
    assert try_flock(first)
    assert not try_flock(second) and not try_flock(second, shared=True)
    os.close(first)
    assert try_flock(second, shared=True)
    third = os.open(tmp_path / "lock", os.O_RDONLY)
    assert try_flock(third, shared=True)
    for fd in (second, third):
        os.close(fd)


def test_tries_until_released_and_gives_up_at_the_deadline(tmp_path):
    holder, waiter = open_twice(tmp_path / "lock")
    assert try_flock(holder)
    assert not flock_within(waiter, 0.1)
    released = threading.Event()
    threading.Thread(target=lambda: (released.wait(10), os.close(holder))).start()
    released.set()
    assert flock_within(waiter, 10)
    os.close(waiter)
