"""The keep-alive as a real process: its pings keep the host awake, and a host coming back wakes the restore service."""

import re
import time

import pytest

from helpers import RawServer, command_env, seed_shop
from service_helpers import figures, log_text, wait_for_figures, wait_for_log, wait_until
from sleepguard.runner import read_state

KEEP_ALIVE = "keep_alive_super_aggressive"
RESTORE = "auto_restore_service"


def start_restore_service(services, env, data_dir):
    """A restore service that checked once and would sleep 30 s: only a wake makes it look again."""
    services.start(RESTORE, {**env, "RESTORE_CHECK_INTERVAL": "30"})
    wait_for_log(data_dir, RESTORE, "no good backup yet", 10)


def test_pings_keep_a_sleepy_host_awake_and_record_their_latency(services, start_demo, data_dir):
    demo = start_demo("--idle-sleep", "0.5")
    services.start(KEEP_ALIVE, command_env(data_dir, demo.url, KEEP_ALIVE_INTERVAL="0.15"))
    pings = wait_for_figures(data_dir, KEEP_ALIVE, lambda f: f["pings_ok"] >= 1, 10, "a first ping")["pings_ok"]
    seed_shop(demo.url, users=1, customers=2)
    # Eight more pings span more than twice the host's idle limit.
    found = wait_for_figures(data_dir, KEEP_ALIVE, lambda f: f["pings_ok"] >= pings + 8, 10, "eight pings")
    assert len(demo.state()["users"]) == 1, "the host fell asleep between pings"
    assert read_state(data_dir, KEEP_ALIVE).last_outcome == "ok"
    assert 0 < found["latency_seconds"] < 1
    assert found["consecutive_failures"] == 0 and found["pings_failed"] == 0
    assert found["wakes_sent"] == 0 and found["last_restart_seen_at"] is None
    assert re.search(r"INFO health ok in \d\.\d{3} s\n", log_text(data_dir, KEEP_ALIVE))


def test_an_answer_after_failures_wakes_the_running_restore_service(services, proxy, data_dir):
    env = command_env(data_dir, proxy.url, KEEP_ALIVE_INTERVAL="0.1")
    start_restore_service(services, env, data_dir)
    services.start(KEEP_ALIVE, env)
    wait_for_figures(data_dir, KEEP_ALIVE, lambda f: f["pings_ok"] >= 2, 10, "healthy pings")

    proxy.set_fault("502", path_prefix="/api/health", seconds=0.8)
    failing = wait_for_figures(data_dir, KEEP_ALIVE, lambda f: f["consecutive_failures"] >= 1, 5, "a failed ping")
    assert failing["wakes_sent"] == 0 and "host answered 502" in failing["last_error"]
    found = wait_for_figures(data_dir, KEEP_ALIVE, lambda f: f["wakes_sent"] >= 1, 5, "a wake after the failures")

    assert found["consecutive_failures"] == 0 and found["last_restart_seen_at"]
    log = log_text(data_dir, KEEP_ALIVE)
    assert re.search(r"WARNING back end answered again after \d+ failures?; woke the restore service\n", log)
    assert "health check failed (1 in a row): GET /api/health: host answered 502" in log
    wait_for_log(data_dir, RESTORE, "woken by SIGUSR1", 5)
    wait_for_log(data_dir, RESTORE, "no good backup yet", 5, count=2)
    assert figures(data_dir, KEEP_ALIVE)["wakes_sent"] == 1, "one outage, one wake"


def test_a_slow_answer_after_fast_ones_counts_as_a_cold_start_once(services, proxy, data_dir):
    # 0.6 s is slow and 1 s slower: with two suites at once on two cores a plain ping took more than 0.25 s.
    env = command_env(data_dir, proxy.url, KEEP_ALIVE_INTERVAL="0.1", SLOW_ANSWER_SECONDS="0.6")
    start_restore_service(services, env, data_dir)
    services.start(KEEP_ALIVE, env)
    before = wait_for_figures(data_dir, KEEP_ALIVE, lambda f: f["pings_ok"] >= 2, 10, "fast pings")
    assert before["wakes_sent"] == 0

    proxy.set_fault("latency", path_prefix="/api/health", count=1, latency=1.0)
    found = wait_for_figures(data_dir, KEEP_ALIVE, lambda f: f["wakes_sent"] >= 1, 5, "a wake after a slow answer")
    assert found["slow"] and found["latency_seconds"] >= 1.0
    assert re.search(r"back end answered slowly \(1\.\d\d s, a cold start\?\); woke the restore service",
                     log_text(data_dir, KEEP_ALIVE))
    wait_for_log(data_dir, RESTORE, "woken by SIGUSR1", 5)

    # A steadily slow network is one cold start, not one per ping.
    pings = wait_for_figures(data_dir, KEEP_ALIVE, lambda f: not f["slow"], 5, "a fast ping again")["pings_ok"]
    proxy.set_fault("latency", path_prefix="/api/health", count=3, latency=1.0)
    found = wait_for_figures(data_dir, KEEP_ALIVE, lambda f: f["pings_ok"] >= pings + 4, 15, "three slow pings")
    assert found["wakes_sent"] == 2


@pytest.mark.parametrize("mode", ["silent", "trickle"])
def test_a_round_against_a_host_that_never_answers_ends_in_time(services, data_dir, mode):
    interval, read_timeout = 0.5, 1.0
    with RawServer(mode) as server:
        services.start(KEEP_ALIVE, command_env(data_dir, server.url, KEEP_ALIVE_INTERVAL=interval,
                                               READ_TIMEOUT=read_timeout, RETRIES=3))
        failed = wait_for_figures(data_dir, KEEP_ALIVE, lambda f: f["pings_failed"] >= 1, 10, "a first failed ping")
        wait_until(lambda: figures(data_dir, KEEP_ALIVE)["pings_failed"] > failed["pings_failed"], 10, "a next round")
        started = time.monotonic()
        count = figures(data_dir, KEEP_ALIVE)["pings_failed"]
        wait_until(lambda: figures(data_dir, KEEP_ALIVE)["pings_failed"] > count, 10, "one more round")
        took = time.monotonic() - started
    assert took < interval + read_timeout + 1, f"one round took {took:.2f} s"
    assert f"timed out after {read_timeout} s" in figures(data_dir, KEEP_ALIVE)["last_error"]


def test_a_wake_the_restore_service_was_not_running_for_is_delivered_once_it_runs(services, proxy, data_dir):
    env = command_env(data_dir, proxy.url, KEEP_ALIVE_INTERVAL="0.1")
    services.start(KEEP_ALIVE, env)
    wait_for_figures(data_dir, KEEP_ALIVE, lambda f: f["pings_ok"] >= 1, 10, "a healthy ping")
    proxy.set_fault("502", path_prefix="/api/health", seconds=0.8)
    wait_for_log(data_dir, KEEP_ALIVE, "the restore service is not running, so nothing was woken yet", 5)
    assert figures(data_dir, KEEP_ALIVE)["wakes_sent"] == 0
    start_restore_service(services, env, data_dir)
    wait_for_figures(data_dir, KEEP_ALIVE, lambda f: f["wakes_sent"] == 1, 5, "the kept wake delivered")
    wait_for_log(data_dir, KEEP_ALIVE, "; woke the restore service at last", 5)
    wait_for_log(data_dir, RESTORE, "woken by SIGUSR1", 5)


def test_a_slow_answer_during_our_own_restore_is_not_a_cold_start(services, proxy, data_dir, restore_held_elsewhere):
    # As above: a 1 s answer against a 0.6 s threshold.
    env = command_env(data_dir, proxy.url, KEEP_ALIVE_INTERVAL="0.1", SLOW_ANSWER_SECONDS="0.6")
    # No restore service: the keep-alive logs a cold start it sees whether or not it can wake anyone.
    services.start(KEEP_ALIVE, env)
    before = wait_for_figures(data_dir, KEEP_ALIVE, lambda f: f["pings_ok"] >= 2, 10, "fast pings")
    # The server hashing the restore's PINs holds every request, the health check too.
    proxy.set_fault("latency", path_prefix="/api/health", count=2, latency=1.0)
    wait_for_figures(data_dir, KEEP_ALIVE, lambda f: f["pings_ok"] >= before["pings_ok"] + 3, 15,
                     "slow pings, then a fast one")
    assert "s (slow)" in log_text(data_dir, KEEP_ALIVE) and "cold start" not in log_text(data_dir, KEEP_ALIVE)


def test_rounds_keep_their_interval_while_the_heartbeat_receiver_hangs(services, demo_backend, data_dir, receiver):
    # Each ping hangs 3 s at the receiver (heartbeat.beat would wait out its timeout and retries in-line).
    receiver.answer(delay=3)
    env = command_env(data_dir, demo_backend.url, KEEP_ALIVE_INTERVAL="0.1", HEARTBEAT_URL=f"{receiver.url}/check",
                      ALERT_AFTER="1", HEARTBEAT_INTERVAL="0.1")
    services.start(KEEP_ALIVE, env)
    wait_until(lambda: read_state(data_dir, KEEP_ALIVE), 10, "a first round")
    started, rounds = time.monotonic(), read_state(data_dir, KEEP_ALIVE).iterations
    found = wait_for_figures(data_dir, KEEP_ALIVE, lambda f: f["heartbeats_skipped"] >= 10, 10,
                             "rounds going on while the heartbeat waits")
    elapsed, done = time.monotonic() - started, read_state(data_dir, KEEP_ALIVE).iterations - rounds
    # Ten rounds in well under one hanging ping's 3 s: the loop never waited for the heartbeat.
    assert done >= 10 and elapsed < 3, (done, elapsed)
    assert found["pings_failed"] == 0 and found["verdict"] != "PROTECTED"
