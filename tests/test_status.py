"""The status screen tells the truth: stale PID files, old backups, held suspects, PINs to hand out by e-mail only."""

import json
import os
import subprocess

from helpers import backup_now, make_settings, seed_shop
from sleepguard import services as registry
from sleepguard.pins import record_restored_pins
from sleepguard.runner import state_file_path
from sleepguard.status import collect_status, format_status
from sleepguard.store import BackupStore
from service_helpers import wait_for, write_pid_file


def test_nothing_on_disk_and_no_back_end(tmp_path):
    data_dir = tmp_path / "never-created"
    status = collect_status(make_settings(data_dir))
    assert status["protected"] is False
    assert status["last_good_backup"] is None
    assert status["backend"]["configured"] is False
    assert [service["state"] for service in status["services"]] == ["stopped"] * 3
    screen = format_status(status)
    assert screen.startswith("NOT PROTECTED") and "no backup yet" in screen
    assert "No backup has been taken yet" in screen and "No back end is set" in screen
    reasons = screen.split("\n\ndetails")[0]
    assert "DATA_DIR" not in reasons and "PID" not in reasons
    assert all(len(line) < 100 for line in screen.splitlines())
    json.dumps(status)
    assert not data_dir.exists(), "a status look must not create anything"


def test_stale_pid_files_are_reported_with_the_reason(data_dir, sleeper):
    dead = subprocess.Popen(["true"])
    write_pid_file(data_dir, registry.KEEP_ALIVE.name, dead)
    dead.wait()
    write_pid_file(data_dir, registry.AUTO_RESTORE.name, sleeper)
    status = collect_status(make_settings(data_dir))
    states = {service["service"]: (service["state"], service["reason"]) for service in status["services"]}
    assert states[registry.KEEP_ALIVE.name] == ("stale", f"PID {dead.pid} is not running")
    assert states[registry.AUTO_RESTORE.name] == ("stale", f"PID {sleeper.pid} is another program (sleep)")
    assert states[registry.AUTO_BACKUP.name] == ("stopped", "no PID file")
    screen = format_status(status)
    assert f"STALE PID file: PID {sleeper.pid} is another program (sleep)" in screen
    down = [reason["service"] for reason in status["verdict"]["reasons"] if reason["kind"] == "service_down"]
    assert registry.AUTO_RESTORE.name in down and "The auto-restore service is not running." in screen
    assert sleeper.poll() is None


def test_a_backup_older_than_three_intervals_is_not_fresh(data_dir, demo_backend):
    seed_shop(demo_backend.url, users=2, customers=2)
    assert backup_now(make_settings(data_dir, demo_backend.url)).kind == "good"
    backup = collect_status(make_settings(data_dir, demo_backend.url, BACKUP_INTERVAL="60"))["last_good_backup"]
    assert backup["fresh"] is True and backup["checksum_ok"] is True
    assert backup["counts"] == {"users": 2, "customers": 4, "orders": 4}

    quick = make_settings(data_dir, demo_backend.url, BACKUP_INTERVAL="0.05")

    def backup_is_stale():
        return not collect_status(quick)["last_good_backup"]["fresh"]

    wait_for(backup_is_stale)
    status = collect_status(quick)
    assert "backup_stale" in [reason["kind"] for reason in status["verdict"]["reasons"]]
    assert any(warning.startswith("The last good backup is ") and "it should be at most" in warning
               for warning in status["warnings"])
    assert status["protected"] is False

    # An unchanged read touches data_backup.json: that counts as verified now.
    os.utime(BackupStore(quick).latest_path)
    touched = collect_status(make_settings(data_dir, demo_backend.url, BACKUP_INTERVAL="60"))["last_good_backup"]
    assert touched["verified_at"] >= touched["created_at"] and touched["age_seconds"] < 5


def test_suspects_held_and_pins_to_hand_out_are_warned_by_email_only(data_dir, demo_backend):
    settings = make_settings(data_dir, demo_backend.url)
    seed_shop(demo_backend.url, users=2, customers=2)
    assert backup_now(settings).kind == "good"
    demo_backend.sleep_now()
    assert backup_now(settings).kind == "suspect"
    record_restored_pins(data_dir, {"owner1@example.com": "73194062"})

    status = collect_status(settings)
    assert len(status["suspects_held"]) == 1 and status["suspects_held"][0]["verdict"] == "wipe"
    # The history line wraps where its folder's length says: read the screen as one line.
    assert "1 suspect read kept aside" in " ".join(format_status(status).split())
    assert status["pins_to_hand_out"] == ["owner1@example.com"]
    assert any(warning.startswith("1 user needs the new PIN the restore gave them: owner1@example.com")
               and "cat " in warning and "restored_pins.json" in warning and "--pins-handed-out" in warning
               for warning in status["warnings"])
    for text in (json.dumps(status), format_status(status)):
        assert "73194062" not in text


def test_back_end_reachability_is_one_quick_health_call(data_dir, demo_backend):
    reachable = collect_status(make_settings(data_dir, demo_backend.url))["backend"]
    assert reachable["reachable"] is True and reachable["health"] == "healthy"
    assert 0 <= reachable["latency_seconds"] < 5

    demo_backend.stop()
    gone = collect_status(make_settings(data_dir, demo_backend.url))
    assert gone["backend"]["reachable"] is False and "connection refused" in gone["backend"]["error"]
    assert any(warning.startswith("The back end does not answer") for warning in gone["warnings"])
    assert gone["verdict"]["code"] == 2 and "backend_down" in [reason["kind"] for reason in gone["verdict"]["reasons"]]
    assert "NOT reachable" in format_status(gone)


def test_the_token_is_scrubbed_even_from_another_process_state_file(data_dir):
    canary = "canary-token-5b7c1d"
    state_file_path(data_dir, "auto_backup_super_aggressive").write_text(json.dumps(
        {"service": "auto_backup_super_aggressive", "last_run_at": "2026-01-01T00:00:00Z", "last_outcome": "failed",
         "last_summary": f"refused: Bearer {canary}", "last_figures": {"note": canary}}))
    settings = make_settings(data_dir, "http://127.0.0.1:9", BACKEND_MODE="snapshot", API_TOKEN=canary,
                             CONNECT_TIMEOUT="0.5")
    status = collect_status(settings)
    for text in (json.dumps(status), format_status(status)):
        assert canary not in text
    assert "refused: Bearer ***" in format_status(status)


def test_the_off_site_copies_have_one_line_with_the_recipient_fingerprint_and_none_without_them(data_dir, tmp_path):
    from offsite_helpers import new_identity, offsite_settings
    from sleepguard.offsite_queue import write_record
    from sleepguard.verdict import judge

    assert collect_status(make_settings(data_dir))["offsite"] is None
    assert "off-site" not in format_status(collect_status(make_settings(data_dir)))

    class NoStore:
        url, bucket = "http://127.0.0.1:9", "shop-copies"

    identity, recipient = new_identity(tmp_path / "keys")
    settings = offsite_settings(data_dir, NoStore(), recipient, str(identity))
    write_record(settings, uploaded="backup-20261201T135800.000000Z-0123456789abcdef.age")
    status = collect_status(settings)
    offsite = status["offsite"]
    assert offsite["ok"] and offsite["waiting"] == 0 and offsite["max_behind"] == 3
    line = next(line for line in format_status(status).splitlines() if line.startswith("off-site"))
    assert line.startswith("off-site: last copy ") and line.endswith(f", 0 waiting (recipient "
                                                                      f"{offsite['recipient_fingerprint']})")
    assert recipient not in json.dumps(status)
    # A refused write is a WARNING at once, not only once copies pile up.
    write_record(settings, problem="the off-site store refused the write (AccessDenied)")
    reasons = judge(collect_status(settings)).reasons
    assert any(reason.kind == "offsite_problem" for reason in reasons)


def test_a_restore_running_in_another_process_is_shown_with_how_far_it_got(data_dir, restore_held_elsewhere):
    status = collect_status(make_settings(data_dir))
    assert status["restore"] == {"running": True, "users_done": 37, "users_total": 200,
                                 "pid": restore_held_elsewhere.pid}
    assert f"restoring    37 of 200 users (PID {restore_held_elsewhere.pid})" in format_status(status)
    restore_held_elsewhere.kill()
    restore_held_elsewhere.wait(10)
    assert collect_status(make_settings(data_dir))["restore"]["running"] is False
