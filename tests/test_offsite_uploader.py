"""The uploader as its own short-lived process: it drains the queue, and a kill -9 at any moment loses nothing."""

import os
import random
import signal
import subprocess
import sys
import time

from fault_proxy import FaultProxy
from helpers import PROJECT_DIR, command_env
from offsite_helpers import PREFIX, bucket_objects, new_identity, offsite_settings, record_backups
from sleepguard.offsite import POINTER_NAME, chosen_copies, parse_pointer
from sleepguard.offsite_copies import check_remote, fetch_latest
from sleepguard.offsite_queue import offsite_status, queue_copy, queued_copies
from sleepguard.offsite_queue import start_uploader as launch_uploader

COPIES = 8
START_DEADLINE = 15


def uploader_env(settings, endpoint):
    return command_env(settings.data_dir, OFFSITE_URL=settings.offsite_url, OFFSITE_ENDPOINT_URL=endpoint,
                       OFFSITE_RECIPIENT=settings.offsite_recipient, READ_TIMEOUT="2", CONNECT_TIMEOUT="1",
                       RETRIES="1", RETRY_BACKOFF="0.01")


def start_uploader(env):
    return subprocess.Popen([sys.executable, "-m", "sleepguard.offsite_uploader"], cwd=PROJECT_DIR, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_the_uploader_process_uploads_everything_queued_and_says_so_in_its_log(data_dir, moto_s3, tmp_path):
    _identity, recipient = new_identity(tmp_path / "keys")
    settings = offsite_settings(data_dir, moto_s3, recipient)
    for path in record_backups(settings, 3):
        queue_copy(settings, path)
    process = start_uploader(uploader_env(settings, moto_s3.url))
    assert process.wait(30) == 0, process.stderr.read()
    process.stderr.close()
    assert queued_copies(settings) == [] and offsite_status(settings)["ok"]
    assert len(chosen_copies(key.rsplit("/", 1)[1] for key in bucket_objects(moto_s3))) == 3
    assert "uploaded" in (data_dir / "offsite_uploader.log").read_text()


def test_kill_9_at_random_moments_never_leaves_a_partial_latest_and_the_next_run_catches_up(data_dir, moto_s3,
                                                                                            tmp_path):
    identity, recipient = new_identity(tmp_path / "keys")
    settings = offsite_settings(data_dir, moto_s3, recipient, str(identity))
    backups = {path.read_bytes() for path in record_backups(settings, COPIES)}
    for path in sorted((data_dir / "auto_backups_super").glob("backup-*.json")):
        queue_copy(settings, path)
    seed = random.randrange(1 << 30)
    chooser = random.Random(seed)
    with FaultProxy(moto_s3.url) as proxy:
        # Each request takes 100 ms longer, and each kill comes within 800 ms of the first request a run sends:
        # kills land in the middle of the queue, during a copy's upload or between it and the pointer's.
        proxy.set_fault("latency", latency=0.1)
        env = uploader_env(settings, proxy.url)
        cut_short = 0
        for _round in range(4):
            if not queued_copies(settings):
                break  # the earlier runs got through everything: nothing left to cut short
            seen = proxy.requests_seen
            process = start_uploader(env)
            deadline = time.monotonic() + START_DEADLINE
            while proxy.requests_seen == seen and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.01)
            time.sleep(chooser.uniform(0, 0.8))
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
            process.stderr.close()
            objects = bucket_objects(moto_s3, PREFIX + "/")
            if f"{PREFIX}/{POINTER_NAME}" in objects:
                name, _sha = parse_pointer(objects[f"{PREFIX}/{POINTER_NAME}"][0])
                assert f"{PREFIX}/{name}" in objects, f"seed {seed}: the pointer names a missing copy"
                assert fetch_latest(settings)[0] in backups, f"seed {seed}"
            assert all(ok for _name, ok, _why in check_remote(settings)), f"seed {seed}: a partial copy"
            cut_short += bool(queued_copies(settings))
        # The first kill comes within 0.8 s of a run's first request, long before all eight copies went up.
        assert cut_short, f"seed {seed}: the kills came too late to cut any run short"
        proxy.clear()
        process = start_uploader(env)
        assert process.wait(30) == 0, process.stderr.read()
        process.stderr.close()
    assert queued_copies(settings) == []
    names = chosen_copies(key.rsplit("/", 1)[1] for key in bucket_objects(moto_s3, PREFIX + "/"))
    assert len(names) == COPIES, f"seed {seed}"
    newest = max(backups, key=lambda data: data.count(b"Customer"))
    assert fetch_latest(settings)[0] == newest


def test_start_uploader_runs_it_detached_with_the_settings_in_its_environment(data_dir, moto_s3, tmp_path):
    _identity, recipient = new_identity(tmp_path / "keys")
    settings = offsite_settings(data_dir, moto_s3, recipient)
    queue_copy(settings, record_backups(settings, 1)[0])
    process = launch_uploader(settings, environ=uploader_env(settings, moto_s3.url))
    assert process.wait(30) == 0, (data_dir / "offsite_uploader.log").read_text()
    assert queued_copies(settings) == [] and offsite_status(settings)["last_copy"]
