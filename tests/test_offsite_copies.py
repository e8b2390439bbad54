"""Off-site copies against moto's S3 server on loopback: upload in order, nothing readable, faults, fetch, check."""

import io
import json
import os
import shutil
from datetime import timedelta

import pyrage
import pytest

from fault_proxy import FaultProxy
from helpers import backup_now, files_under, make_settings, seed_shop
from offsite_helpers import (PREFIX, MotoBucket, SHOP_EMAILS, bucket_objects, new_identity, offsite_settings,
                             record_backups, write_pins)
from sleepguard.exceptions import OffsiteError
from sleepguard.offsite import POINTER_NAME, chosen_copies, name_time
from sleepguard.offsite_copies import apply_remote_retention, check_remote, drain_queue, fetch_latest
from sleepguard.offsite_queue import offsite_status, queue_copy, queued_copies
from sleepguard.store import BackupStore


@pytest.fixture
def keys(tmp_path):
    """(identity file, public key) of the owner."""
    return new_identity(tmp_path / "keys")


def uploaded_backups(settings, count):
    """Record count good backups and upload a copy of each; returns their local paths."""
    paths = record_backups(settings, count)
    for path in paths:
        queue_copy(settings, path)
    assert drain_queue(settings).waiting == 0
    return paths


def copy_names(s3):
    """Our copies directly under the prefix, newest first."""
    return chosen_copies(key.removeprefix(PREFIX + "/") for key in bucket_objects(s3, PREFIX + "/"))


def test_newest_object_decrypts_to_exactly_the_local_backup_and_nothing_readable_reaches_the_bucket(
        demo_backend, data_dir, moto_s3, keys, tmp_path):
    identity_file, recipient = keys
    shop = seed_shop(demo_backend.url, users=2, customers=3)
    pins_file = write_pins(tmp_path / "pins.json", {email: shop[email]["pin"] for email in shop})
    settings = offsite_settings(data_dir, moto_s3, recipient, str(identity_file), BACKEND_URL=demo_backend.url,
                                PINS_FILE=pins_file)
    outcome = backup_now(settings)
    assert outcome.kind == "good", outcome.reason
    queue_copy(settings, outcome.path)
    report = drain_queue(settings)
    assert report.problem == "" and report.waiting == 0 and len(report.uploaded) == 1

    objects = bucket_objects(moto_s3)
    newest = f"{PREFIX}/{report.uploaded[0]}"
    assert set(objects) == {newest, f"{PREFIX}/{POINTER_NAME}"}
    # Standard age: the same header the age command line writes and reads (`age -d -i identity.txt`).
    assert objects[newest][0].startswith(b"age-encryption.org/v1\n")
    identity = pyrage.x25519.Identity.from_str(identity_file.read_text().splitlines()[-1])
    copy = json.loads(pyrage.decrypt(objects[newest][0], [identity]))
    assert copy["backup"].encode() == outcome.path.read_bytes() == (data_dir / "data_backup.json").read_bytes()
    assert copy["pins"] == {email: shop[email]["pin"] for email in shop}
    assert copy["backend_url"] == demo_backend.url and copy["watermark"]
    for key, (data, metadata) in objects.items():
        for email in shop:
            for text in (email, email.split("@")[0]):
                assert text.encode() not in data and text not in key and text not in json.dumps(metadata), key
        assert b"Customer" not in data and b"Item" not in data


def test_remote_down_for_ten_backups_then_up_uploads_all_ten_in_order_and_leaves_local_files_alone(
        data_dir, moto_s3, keys):
    _identity_file, recipient = keys
    with FaultProxy(moto_s3.url) as proxy:
        settings = offsite_settings(data_dir, moto_s3, recipient, endpoint=proxy.url)
        paths = record_backups(settings, 10)
        proxy.set_fault("503")
        for n, path in enumerate(paths):
            before = files_under(data_dir / "auto_backups_super")
            queue_copy(settings, path)
            report = drain_queue(settings)
            assert report.uploaded == [] and report.waiting == n + 1
            assert "answered HTTP 503" in report.problem
            assert files_under(data_dir / "auto_backups_super") == before
        status = offsite_status(settings)
        assert not status["ok"] and status["waiting"] == 10 and "503" in status["text"]
        local = files_under(data_dir / "auto_backups_super")
        queued = [path.name for path in queued_copies(settings)]
        proxy.clear()
        report = drain_queue(settings)
    assert report.problem == "" and report.waiting == 0
    assert report.uploaded == queued == sorted(queued, key=name_time)
    assert [name_time(name) for name in report.uploaded] == sorted(name_time(name) for name in report.uploaded)
    assert sorted(copy_names(moto_s3)) == sorted(queued)
    assert files_under(data_dir / "auto_backups_super") == local
    status = offsite_status(settings)
    assert status["ok"] and status["waiting"] == 0 and status["last_copy"] == queued[-1]
    assert ", 0 waiting" in status["text"]


@pytest.mark.parametrize("fault", ["reset", "hang", "502"])
def test_a_slow_or_broken_store_gives_up_in_bounded_time_and_keeps_the_copy_waiting(data_dir, moto_s3, keys, fault):
    _identity_file, recipient = keys
    with FaultProxy(moto_s3.url) as proxy:
        settings = offsite_settings(data_dir, moto_s3, recipient, endpoint=proxy.url, READ_TIMEOUT="0.5")
        queue_copy(settings, record_backups(settings, 1)[0])
        proxy.set_fault(fault)
        report = drain_queue(settings)
        assert report.problem and report.waiting == 1 and report.uploaded == []
        proxy.clear()
        assert drain_queue(settings).waiting == 0
    assert len(copy_names(moto_s3)) == 1


def test_fetch_latest_gives_the_newest_copy_its_pins_back_end_and_watermark(data_dir, moto_s3, keys, tmp_path):
    identity_file, recipient = keys
    restored_pins = write_pins(data_dir / "restored_pins.json", {SHOP_EMAILS[1]: "731904"})
    settings = offsite_settings(data_dir, moto_s3, recipient, str(identity_file))
    paths = uploaded_backups(settings, 3)
    backup, pins, restored, backend_url, watermark = fetch_latest(settings)
    assert backup == paths[-1].read_bytes()
    assert pins == {} and restored == json.loads(restored_pins.read_text())
    assert backend_url == "http://127.0.0.1:8000", "the URL's password must not travel"
    assert watermark == "2026-11-20T09:14:00.000000Z"
    # A new watcher on an empty DATA_DIR reads the same copy, and --at TIME picks an older one.
    other = offsite_settings(tmp_path / "new-watcher", moto_s3, "", str(identity_file))
    assert fetch_latest(other)[0] == paths[-1].read_bytes()
    at = name_time(copy_names(moto_s3)[1]) + timedelta(seconds=1)
    assert fetch_latest(other, at=at)[0] == paths[1].read_bytes()


def test_a_damaged_newest_copy_is_never_taken_and_check_remote_says_which_are_good(data_dir, moto_s3, keys):
    identity_file, recipient = keys
    settings = offsite_settings(data_dir, moto_s3, recipient, str(identity_file))
    paths = uploaded_backups(settings, 2)
    newest = copy_names(moto_s3)[0]
    client = moto_s3.client()
    data = bucket_objects(moto_s3)[f"{PREFIX}/{newest}"][0]
    client.put_object(moto_s3.bucket, f"{PREFIX}/{newest}", io.BytesIO(data[: len(data) // 2]), len(data) // 2)
    assert fetch_latest(settings)[0] == paths[0].read_bytes()
    results = check_remote(settings)
    assert [(name, ok) for name, ok, _why in results] == [(newest, False), (copy_names(moto_s3)[1], True)]
    assert "checksum ok" in results[1][2]


def test_wrong_credentials_are_a_problem_at_once_and_delete_nothing(start_moto, data_dir, keys, monkeypatch):
    _identity_file, recipient = keys
    # moto checks keys once its first actions (the IAM set-up) are spent.
    server = start_moto(env={"INITIAL_NO_AUTH_ACTION_COUNT": "1"})
    server.client().make_bucket("shop-copies")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOTAKEYOFTHISONE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-s3cr3t")
    settings = offsite_settings(data_dir, MotoBucket(server, "shop-copies"), recipient)
    paths = record_backups(settings, 1)
    queue_copy(settings, paths[0])
    before = files_under(data_dir)
    report = drain_queue(settings)
    assert "refused our credentials (InvalidAccessKeyId)" in report.problem and report.waiting == 1
    assert "not-the-secret" not in report.problem and "AKIANOTAKEY" not in report.problem
    status = offsite_status(settings)
    assert not status["ok"] and "refused our credentials" in status["text"]
    assert "not-the-secret" not in json.dumps(status)
    after = files_under(data_dir)
    # Every backup and the queued copy as they were; only the uploader's own record and lock are new.
    assert {name: after.get(name) for name in before} == before


def test_a_missing_bucket_is_a_problem_at_once_even_with_nothing_queued(data_dir, moto_s3, keys):
    _identity_file, recipient = keys
    settings = make_settings(data_dir, OFFSITE_URL="s3://no-such-bucket/x", OFFSITE_ENDPOINT_URL=moto_s3.url,
                             OFFSITE_RECIPIENT=recipient, READ_TIMEOUT="2", RETRIES="0")
    report = drain_queue(settings)
    assert "the bucket no-such-bucket does not exist" in report.problem
    assert "no-such-bucket does not exist" in offsite_status(settings)["text"]


def test_a_recipient_that_does_not_match_the_identity_file_is_refused_before_uploading(data_dir, moto_s3, keys,
                                                                                       tmp_path):
    identity_file, _recipient = keys
    _other_file, other_recipient = new_identity(tmp_path / "keys", "other.txt")
    settings = offsite_settings(data_dir, moto_s3, other_recipient, str(identity_file))
    queue_copy(settings, record_backups(settings, 1)[0])
    report = drain_queue(settings)
    assert "is not the public key of OFFSITE_IDENTITY_FILE" in report.problem and report.waiting == 1
    assert copy_names(moto_s3) == []
    with pytest.raises(OffsiteError, match="is not the public key"):
        check_remote(settings)


def test_remote_retention_keeps_what_the_local_history_keeps_and_only_ever_deletes_our_copies(data_dir, moto_s3,
                                                                                              keys):
    _identity_file, recipient = keys
    settings = offsite_settings(data_dir, moto_s3, recipient, KEEP_LAST="500")
    for path in record_backups(settings, 30, step=timedelta(minutes=53)):
        queue_copy(settings, path)
    assert drain_queue(settings).waiting == 0
    client = moto_s3.client()
    foreign = [f"{PREFIX}/notes.txt", f"{PREFIX}/backup-20200101T000000.000000Z-0123456789abcdef.age.bak",
               f"{PREFIX}/deeper/backup-20200101T000000.000000Z-0123456789abcdef.age",
               "elsewhere/backup-20200101T000000.000000Z-0123456789abcdef.age"]
    for key in foreign:
        client.put_object(moto_s3.bucket, key, io.BytesIO(b"not ours"), 8)
    policy = offsite_settings(data_dir, moto_s3, recipient, KEEP_LAST="4", KEEP_HOURLY="6", KEEP_DAILY="2")
    now = name_time(copy_names(moto_s3)[0]) + timedelta(minutes=5)
    removed = apply_remote_retention(policy, now=now)
    BackupStore(policy).prune_history(now=now)
    local = sorted(path.name.split("-")[1] for path in (data_dir / "auto_backups_super").glob("backup-*.json"))
    remote = sorted(name.split("-")[1] for name in copy_names(moto_s3))
    assert remote == local and removed and len(remote) + len(removed) == 30
    assert set(foreign) <= set(bucket_objects(moto_s3))
    # The local disk lacking copies (a new watcher holds one file) never removes a remote one.
    shutil.rmtree(data_dir / "auto_backups_super")
    assert apply_remote_retention(policy, now=now) == []
    assert sorted(name.split("-")[1] for name in copy_names(moto_s3)) == remote


def test_an_object_that_is_not_the_one_the_pointer_names_is_not_taken_as_the_latest(data_dir, moto_s3, keys):
    identity_file, recipient = keys
    settings = offsite_settings(data_dir, moto_s3, recipient, str(identity_file))
    paths = uploaded_backups(settings, 3)
    # A whole, valid copy of the oldest backup put where the newest was: it decrypts, but is not what was stored.
    replacement = queue_copy(settings, paths[0]).read_bytes()
    moto_s3.client().put_object(moto_s3.bucket, f"{PREFIX}/{copy_names(moto_s3)[0]}", io.BytesIO(replacement),
                                len(replacement))
    assert fetch_latest(settings)[0] == paths[1].read_bytes()


@pytest.mark.parametrize("where", ["env file", "profile"])
def test_credentials_from_the_env_file_or_a_profile_reach_the_client_and_nowhere_else(data_dir, moto_s3, keys,
                                                                                       tmp_path, monkeypatch,
                                                                                       caplog, where):
    _identity_file, recipient = keys
    key_id, secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    if where == "env file":
        # python-dotenv's values are not exported: the store must be handed them.
        env_file = tmp_path / ".env"
        env_file.write_text(f"AWS_ACCESS_KEY_ID={key_id}\nAWS_SECRET_ACCESS_KEY={secret}\n")
        env_file.chmod(0o600)
        monkeypatch.setenv("ENV_FILE", str(env_file))
    else:
        shared = tmp_path / "aws-credentials"
        shared.write_text(f"[shop]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(shared))
        monkeypatch.setenv("AWS_PROFILE", "shop")
    settings = offsite_settings(data_dir, moto_s3, recipient, LOG_LEVEL="DEBUG")
    caplog.set_level("DEBUG")
    queue_copy(settings, record_backups(settings, 1)[0])
    report = drain_queue(settings)
    assert report.problem == "" and len(report.uploaded) == 1
    shown = caplog.text + json.dumps(offsite_status(settings)) + repr(settings) + repr(report)
    assert secret not in shown and key_id not in shown
    assert not [path for path in data_dir.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]


def test_without_any_credentials_the_problem_says_what_to_set(data_dir, moto_s3, keys, monkeypatch):
    _identity_file, recipient = keys
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(data_dir / "none"))
    report = drain_queue(offsite_settings(data_dir, moto_s3, recipient))
    assert "no credentials for the off-site store: set AWS_ACCESS_KEY_ID" in report.problem


def test_check_remote_reports_a_pointer_naming_a_copy_that_is_gone(data_dir, moto_s3, keys):
    identity_file, recipient = keys
    settings = offsite_settings(data_dir, moto_s3, recipient, str(identity_file))
    uploaded_backups(settings, 2)
    newest = copy_names(moto_s3)[0]
    moto_s3.client().remove_object(moto_s3.bucket, f"{PREFIX}/{newest}")
    results = check_remote(settings)
    assert results[0] == (POINTER_NAME, False, f"names {newest}, which is not in the store")
    assert [ok for _name, ok, _why in results[1:]] == [True]
