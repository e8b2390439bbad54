"""One restore at a time per DATA_DIR, and how far it got: the lock and the progress file, across real processes."""

import json
import os
import stat

import pytest

from sleepguard.exceptions import RestoreRunning
from sleepguard.restore_lock import RestoreLock, refuse_if_running, running_restore
from sleepguard.services import restore_progress_path

def test_while_a_restore_runs_its_progress_is_private_and_others_see_it(data_dir):
    assert running_restore(data_dir) is None
    with RestoreLock(data_dir, 3) as progress:
        progress.advance(2)
        path = restore_progress_path(data_dir)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert {k: v for k, v in json.loads(path.read_text()).items() if k != "started_at"} == \
            {"pid": os.getpid(), "users_done": 2, "users_total": 3}
        running = running_restore(data_dir)
        assert (running["running"], running["users_done"], running["users_total"], running["pid"]) == \
            (True, 2, 3, os.getpid())
    assert running_restore(data_dir) is None and not restore_progress_path(data_dir).exists()


def test_a_second_restore_beside_a_running_one_is_refused_with_its_pid(data_dir, restore_held_elsewhere):
    with pytest.raises(RestoreRunning) as caught:
        refuse_if_running(data_dir)
    assert str(caught.value) == f"a restore is already running (PID {restore_held_elsewhere.pid}): wait for it to end"
    with pytest.raises(RestoreRunning):
        with RestoreLock(data_dir, 1):
            pass
    assert running_restore(data_dir)["users_done"] == 37


def test_a_progress_file_left_by_a_dead_restore_blocks_nothing(data_dir):
    restore_progress_path(data_dir).write_text(json.dumps({"pid": 999999, "users_done": 5, "users_total": 9}))
    assert running_restore(data_dir) is None
    refuse_if_running(data_dir)
    with RestoreLock(data_dir, 1):
        assert running_restore(data_dir)["users_total"] == 1


def test_the_lock_ends_with_its_process_even_killed(data_dir, restore_held_elsewhere):
    restore_held_elsewhere.kill()
    restore_held_elsewhere.wait(10)
    assert running_restore(data_dir) is None
