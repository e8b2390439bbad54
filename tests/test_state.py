"""Typed service state: what a service writes through the runner, the status screen reads back through the same types."""

import json
import os

from helpers import backup_now, make_settings, seed_shop
from sleepguard import auto_backup, auto_restore, keep_alive
from sleepguard.client import BackendClient
from sleepguard.runner import ServiceContext, run_iteration, write_state
from sleepguard.state import (BackupFigures, KeepAliveFigures, RestoreFigures, ServiceState, material, read_state,
                              state_file_path)
from sleepguard.status import collect_status


def run_and_write(settings, service, run_once):
    """One iteration the way the runner does it: run, record in a ServiceState, write the state file."""
    state = ServiceState(service=service, pid=os.getpid(), started_at="2026-12-01T00:00:00Z")
    context = ServiceContext(service, settings)
    context.iteration = 1
    run_iteration(context, run_once, None, state)
    write_state(settings.data_dir, state)
    return state


def test_what_the_services_write_is_what_the_status_screen_reads(demo_backend, data_dir):
    seed_shop(demo_backend.url, users=2, customers=2)
    settings = make_settings(data_dir, demo_backend.url)
    with BackendClient(settings) as client:
        run_and_write(settings, keep_alive.SERVICE, keep_alive.KeepAlive(settings, client).run_once)
        backup = auto_backup.AutoBackup(settings, client)
        run_and_write(settings, auto_backup.SERVICE, backup.run_once)
        assert backup.figures.good_count == 1
        restore = auto_restore.AutoRestore(settings, client)
        restore.figures.last_restore_at, restore.figures.last_restore_summary = "2026-12-01T00:00:01Z", "restored 2"
        restore.figures.users_needing_pin = ["owner1@example.com"]
        run_and_write(settings, auto_restore.SERVICE, restore.run_once)

    pinged = read_state(data_dir, keep_alive.SERVICE)
    assert isinstance(pinged.last_figures, KeepAliveFigures) and pinged.last_figures.pings_ok == 1
    assert isinstance(read_state(data_dir, auto_backup.SERVICE).last_figures, BackupFigures)
    assert isinstance(read_state(data_dir, auto_restore.SERVICE).last_figures, RestoreFigures)

    status = collect_status(settings)
    by_name = {service["service"]: service for service in status["services"]}
    assert status["backend"]["keep_alive_latency_seconds"] == pinged.last_figures.latency_seconds is not None
    assert by_name[keep_alive.SERVICE]["last_outcome"] == "ok" and by_name[keep_alive.SERVICE]["iterations"] == 1
    assert by_name[auto_backup.SERVICE]["last_figures"]["good_count"] == 1
    assert status["last_restore"] == {"at": "2026-12-01T00:00:01Z", "what": "restored 2", "complete": None,
                                      "users_needing_pin": ["owner1@example.com"]}


def test_an_old_state_file_is_read_as_far_as_it_goes(data_dir):
    data_dir.mkdir(exist_ok=True)
    state_file_path(data_dir, auto_backup.SERVICE).write_text(json.dumps(
        {"service": auto_backup.SERVICE, "iterations": 7, "renamed_long_ago": 1,
         "last_figures": {"good_count": 3, "a_figure_no_longer_kept": "x"}}))
    state = read_state(data_dir, auto_backup.SERVICE)
    assert (state.iterations, state.pid, state.last_outcome) == (7, None, None)
    assert state.last_figures == BackupFigures(good_count=3)
    state_file_path(data_dir, keep_alive.SERVICE).write_text(json.dumps({"last_figures": [1, 2]}))
    assert read_state(data_dir, keep_alive.SERVICE).last_figures == KeepAliveFigures()


def test_a_service_backing_up_through_its_own_client_writes_typed_figures(demo_backend, data_dir):
    seed_shop(demo_backend.url, users=1, customers=1)
    settings = make_settings(data_dir, demo_backend.url)
    assert backup_now(settings).kind == "good"
    with BackendClient(settings) as client:
        state = run_and_write(settings, auto_backup.SERVICE, auto_backup.AutoBackup(settings, client).run_once)
    assert state.last_outcome == "unchanged"
    assert read_state(data_dir, auto_backup.SERVICE) == state


def test_only_ticking_fields_moving_is_no_news_and_anything_else_is():
    quiet = ServiceState(service=keep_alive.SERVICE, last_run_at="2026-12-01T00:00:00Z", iterations=1,
                         last_summary="health ok in 0.050 s", last_figures=KeepAliveFigures(latency_seconds=0.05, pings_ok=1))
    again = ServiceState(service=keep_alive.SERVICE, last_run_at="2026-12-01T00:02:00Z", iterations=2,
                         last_summary="health ok in 0.061 s", last_figures=KeepAliveFigures(latency_seconds=0.061, pings_ok=2))
    assert material(quiet) == material(again)
    failed = ServiceState(service=keep_alive.SERVICE, iterations=3,
                          last_figures=KeepAliveFigures(consecutive_failures=1, pings_ok=2, pings_failed=1))
    assert material(failed) != material(again)
    assert material(ServiceState(service="x", last_figures={"n": 1})) != material(ServiceState(service="x",
                                                                                             last_figures={"n": 2}))
    assert material(BackupFigures(good_count=1)) != material(BackupFigures(good_count=2))
    assert material(BackupFigures(unchanged_count=1)) == material(BackupFigures(unchanged_count=9))
