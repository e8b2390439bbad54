"""The local side of off-site copies: encrypted at once into a private queue, and a status read from local files."""

import json
import stat
import subprocess
import sys

import pytest

from helpers import PROJECT_DIR, make_settings
from offsite_helpers import SHOP_EMAILS, new_identity, offsite_settings, record_backups, write_pins
from sleepguard.exceptions import OffsiteError
from sleepguard.offsite import name_time
from sleepguard.offsite_queue import Shipper, offsite_status, queue_copy, queued_copies, write_record


class NoStore:
    """Settings need an endpoint; these tests never reach one."""

    url, bucket = "http://127.0.0.1:9", "shop-copies"


@pytest.fixture
def settings(data_dir, tmp_path):
    _identity, recipient = new_identity(tmp_path / "keys")
    return offsite_settings(data_dir, NoStore(), recipient, OFFSITE_MAX_BEHIND="3",
                            PINS_FILE=str(tmp_path / "pins.json"))


def test_a_queued_copy_is_private_encrypted_and_named_by_its_backup_time(settings, tmp_path):
    write_pins(tmp_path / "pins.json", {SHOP_EMAILS[0]: "4711"})
    paths = record_backups(settings, 2)
    queued = [queue_copy(settings, path) for path in paths]
    assert queued_copies(settings) == queued
    for path in queued:
        data = path.read_bytes()
        assert data.startswith(b"age-encryption.org/v1\n")
        assert not [text for text in (*SHOP_EMAILS, "Mensah", "4711") if text.encode() in data]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(queued[0].parent.stat().st_mode) == 0o700
    assert name_time(queued[0].name) < name_time(queued[1].name)


def test_a_loose_pin_file_does_not_stop_the_copy(settings, tmp_path, caplog):
    pins = write_pins(tmp_path / "pins.json", {SHOP_EMAILS[0]: "4711"})
    pins.chmod(0o644)
    queue_copy(settings, record_backups(settings, 1)[0])
    assert len(queued_copies(settings)) == 1
    assert "carries no owner's PIN file" in caplog.text and "4711" not in caplog.text


def test_only_a_verified_sleepguard_backup_is_queued(settings, data_dir):
    path = record_backups(settings, 1)[0]
    damaged = data_dir / "damaged.json"
    damaged.write_bytes(path.read_bytes().replace(b"Mensah", b"Mensa"))
    with pytest.raises(OffsiteError, match="damaged.json cannot be copied off-site: checksum mismatch"):
        queue_copy(settings, damaged)
    legacy = data_dir / "legacy.json"
    legacy.write_text(json.dumps({"backup_created": "2025-08-21T02:23:11", "users": [], "customers": []}))
    with pytest.raises(OffsiteError, match="not a sleepguard backup with a time"):
        queue_copy(settings, legacy)
    assert queued_copies(settings) == []


def test_the_status_says_when_the_last_copy_went_and_how_many_wait(settings):
    assert offsite_status(make_settings(settings.data_dir)) == {
        "configured": False, "ok": True, "problem": "", "waiting": 0, "text": "off-site: not configured"}
    status = offsite_status(settings)
    assert status["ok"] and status["text"] == "off-site: last copy never, 0 waiting"
    assert status["recipient_fingerprint"].startswith("age:")
    paths = record_backups(settings, 4)
    for path in paths:
        queue_copy(settings, path)
    status = offsite_status(settings)
    assert not status["ok"] and status["behind"] and status["waiting"] == 4
    assert "more than OFFSITE_MAX_BEHIND=3" in status["text"]
    uploaded = queued_copies(settings)[0]
    uploaded.unlink()
    write_record(settings, uploaded=uploaded.name)
    status = offsite_status(settings)
    assert status["ok"] and status["last_copy"] == uploaded.name and ", 3 waiting" in status["text"]
    write_record(settings, problem="the bucket shop-copies does not exist")
    status = offsite_status(settings)
    assert not status["ok"] and status["text"] == (
        "off-site: NOT WORKING (the bucket shop-copies does not exist); 3 copies waiting")
    assert status["last_copy"] == uploaded.name and status["problem_since"]


def test_missing_settings_are_a_status_problem_not_a_crash(data_dir):
    status = offsite_status(make_settings(data_dir, OFFSITE_URL="s3://shop-copies/x"))
    assert not status["ok"] and "OFFSITE_RECIPIENT is not set" in status["text"]


def test_queueing_and_the_status_keep_the_s3_client_out_of_the_services(settings):
    path = record_backups(settings, 1)[0]
    code = ("import sys, json\nfrom helpers import make_settings\n"
            "from sleepguard.offsite_queue import offsite_status, queue_copy\n"
            f"settings = make_settings({str(settings.data_dir)!r}, OFFSITE_URL={settings.offsite_url!r}, "
            f"OFFSITE_RECIPIENT={settings.offsite_recipient!r})\n"
            f"queue_copy(settings, {str(path)!r}); offsite_status(settings)\n"
            "print(json.dumps(sorted(m for m in ('minio', 'boto3', 'botocore', 'urllib3') if m in sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True,
                            timeout=30, env={"PYTHONPATH": f"{PROJECT_DIR}:{PROJECT_DIR / 'tests'}"})
    assert result.returncode == 0, result.stderr
    # requests brings urllib3 anyway; the S3 client itself must not be loaded.
    assert not {"minio", "boto3", "botocore"} & set(json.loads(result.stdout))


def test_a_copy_that_cannot_be_queued_is_one_line_and_leaves_the_backup_alone(settings, data_dir):
    path = record_backups(settings, 1)[0]
    before = path.read_bytes()
    (data_dir / "offsite_queue").write_text("a file where the queue folder belongs\n")
    with pytest.raises(OffsiteError, match="could not be queued: Not a directory"):
        queue_copy(settings, path)
    assert path.read_bytes() == before and (data_dir / "data_backup.json").read_bytes() == before


def test_a_recipient_the_identity_file_does_not_open_is_a_status_problem_at_once(data_dir, tmp_path):
    identity, _recipient = new_identity(tmp_path / "keys")
    _other_identity, other = new_identity(tmp_path / "keys", "other.txt")
    status = offsite_status(offsite_settings(data_dir, NoStore(), other, str(identity)))
    assert not status["ok"] and "is not the public key of OFFSITE_IDENTITY_FILE" in status["problem"]
    assert other not in status["text"], "the status names keys by fingerprint only"


def test_the_services_and_their_off_site_side_load_no_s3_client():
    code = ("import sys, json\nimport sleepguard.auto_backup, sleepguard.auto_restore, sleepguard.takeover\n"
            "print(json.dumps(sorted(m for m in ('minio', 'boto3', 'botocore') if m in sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_the_shipper_queues_only_when_configured_and_runs_one_uploader_at_a_time(settings, data_dir, monkeypatch):
    plain = Shipper(make_settings(data_dir))
    path = record_backups(settings, 1)[0]
    assert plain.ship(path) == "" and queued_copies(settings) == [] and plain.uploader is None
    started = []

    class Running:
        """A stand-in uploader that runs until told to end."""

        returncode = None

        def poll(self):
            return self.returncode

    def fake_start(settings, environ=None):
        started.append(Running())
        return started[-1]

    monkeypatch.setattr("sleepguard.offsite_queue.start_uploader", fake_start)
    shipper = Shipper(settings)
    assert not shipper.kick(), "nothing waits: no uploader"
    assert shipper.ship(path) == "" and len(queued_copies(settings)) == 1 and len(started) == 1
    assert not shipper.kick() and len(started) == 1, "one is running: no second one"
    started[0].returncode = 1
    assert not shipper.kick(retry_after=3600) and len(started) == 1, "tried again only after retry_after"
    assert shipper.kick() and len(started) == 2 and shipper.uploader is started[1]
