"""Off-site rules (pure): names, the pointer, what a copy holds, settings, and retention as the local history's."""

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from helpers import NO_SETTINGS_FILE, make_settings
from offsite_helpers import EPOCH, record_backups, shop_snapshot
from sleepguard.exceptions import OffsiteError, SettingsError
from sleepguard.offsite import (Location, chosen_copies, copy_name, copy_plaintext, iso_time, location, name_time,
                                new_copy_id, parse_plaintext, parse_pointer, pointer_bytes, remote_kept,
                                require_offsite)
from sleepguard.settings import load_settings
from sleepguard.snapshot import canonical_json
from sleepguard.store import BackupStore
from sleepguard.urls import without_credentials as url_without_credentials

RECIPIENT = "age1" + "q" * 58
STAMP = re.compile(r"\d{8}T\d{6}\.\d{6}Z")


def test_a_copy_name_carries_the_backup_time_and_a_random_id_and_nothing_else():
    when = datetime(2026, 12, 1, 13, 58, 0, 123456, tzinfo=timezone.utc)
    first, second = copy_name(when, new_copy_id()), copy_name(when, new_copy_id())
    assert re.fullmatch(r"backup-20261201T135800\.123456Z-[0-9a-f]{16}\.age", first) and first != second
    assert name_time(first) == when
    for foreign in ("latest.json", "backup-20261201T135800.123456Z-abc.age", "notes.txt",
                    "backup-20261201T135800.123456Z-0123456789abcdef.json"):
        assert name_time(foreign) is None
    older = copy_name(when - timedelta(hours=1), new_copy_id())
    assert chosen_copies(["notes.txt", older, first]) == [first, older]
    assert chosen_copies([older, first], at=when - timedelta(minutes=1)) == [older]


def test_the_location_keeps_to_its_prefix(tmp_path):
    settings = make_settings(tmp_path, OFFSITE_URL="s3://shop-copies/sleepguard/shop/")
    assert location(settings) == Location("shop-copies", "sleepguard/shop")
    assert location(settings).key("latest.json") == "sleepguard/shop/latest.json"
    assert location(settings).name("sleepguard/shop/x.age") == "x.age"
    assert location(settings).name("sleepguard/shop/deeper/x.age") is None
    assert location(settings).name("sleepguard/other/x.age") is None
    assert Location("shop-copies", "").key("x.age") == "x.age"


def test_the_pointer_names_a_copy_and_its_exact_bytes():
    name = copy_name(EPOCH, new_copy_id())
    assert parse_pointer(pointer_bytes(name, b"sealed bytes")) == (name, __import__("hashlib").sha256(
        b"sealed bytes").hexdigest())
    for garbage in (b"", b"[]", b'{"format": "other"}', b"\xff\xfe", json.dumps({
            "format": "sleepguard-offsite-pointer", "name": "../../etc", "sha256": "x"}).encode()):
        with pytest.raises(OffsiteError, match="pointer"):
            parse_pointer(garbage)


def test_a_copy_holds_the_backup_byte_for_byte_its_back_end_without_password_and_the_watermark():
    snapshot = shop_snapshot(3, EPOCH)
    data = json.dumps(snapshot.to_document(), indent=2).encode() + b"\n"
    plain = copy_plaintext(data, snapshot, {"ama.owner@example.com": "4711"}, {})
    contents = parse_plaintext(plain, EPOCH)
    assert contents.backup == data and contents.pins == {"ama.owner@example.com": "4711"}
    # The copy names its back end without the password (the backup file's own URL is the store's business).
    assert contents.backend_url == "http://127.0.0.1:8000"
    assert contents.watermark == iso_time(snapshot.watermark()) == "2026-11-20T09:00:00.000000Z"
    tampered = json.loads(plain)
    tampered["backup"] = tampered["backup"].replace("Mensah", "Mensa")
    with pytest.raises(OffsiteError, match="fails its checksum"):
        parse_plaintext(canonical_json(tampered), EPOCH)
    with pytest.raises(OffsiteError, match="not JSON"):
        parse_plaintext(b"\x00garbage", EPOCH)


@pytest.mark.parametrize("url, expected", [
    ("http://shop:S3cretPW@babs10.example.com:8443/x", "http://babs10.example.com:8443/x"),
    ("https://babs10.onrender.com", "https://babs10.onrender.com"), ("", "")])
def test_a_url_loses_its_user_and_password(url, expected):
    assert url_without_credentials(url) == expected


@pytest.mark.parametrize("name, value, expected", [
    ("OFFSITE_URL", "https://bucket/prefix", "OFFSITE_URL must be s3://bucket/prefix"),
    ("OFFSITE_URL", "s3://Shop_Copies/x", "OFFSITE_URL must be s3://bucket/prefix"),
    ("OFFSITE_RECIPIENT", "AGE-SECRET-KEY-1ABC", "OFFSITE_RECIPIENT must be an age public key"),
    ("OFFSITE_ENDPOINT_URL", "minio:9000", "OFFSITE_ENDPOINT_URL must be an http:// or https:// URL"),
    ("OFFSITE_MAX_BEHIND", "0", "OFFSITE_MAX_BEHIND must be a whole number of at least 1"),
])
def test_bad_offsite_settings_name_the_setting(name, value, expected):
    with pytest.raises(SettingsError, match=re.escape(expected)) as caught:
        load_settings(environ={name: value}, env_file=NO_SETTINGS_FILE)
    if name == "OFFSITE_RECIPIENT":
        assert value not in str(caught.value), "a private key put there by mistake would be shown"


def test_offsite_needs_a_recipient_and_an_endpoint_without_a_path(tmp_path):
    with pytest.raises(SettingsError, match="OFFSITE_RECIPIENT is not set.*--offsite-keygen"):
        require_offsite(make_settings(tmp_path, OFFSITE_URL="s3://shop-copies"))
    with pytest.raises(SettingsError, match="OFFSITE_ENDPOINT_URL must be the store's address without a path"):
        require_offsite(make_settings(tmp_path, OFFSITE_URL="s3://shop-copies", OFFSITE_RECIPIENT=RECIPIENT,
                                      OFFSITE_ENDPOINT_URL="https://s3.example.com/shop-copies"))
    assert make_settings(tmp_path).offsite_max_behind == 3


def _stamps(names):
    return sorted(STAMP.search(name)[0] for name in names)


def test_remote_retention_keeps_exactly_what_the_local_history_keeps(data_dir):
    # Two days and a half of backups every 47 minutes: KEEP_LAST, the hourly and the daily rule all bite.
    record_backups(make_settings(data_dir, KEEP_LAST=500), 80, step=timedelta(minutes=47))
    names = [copy_name(datetime.strptime(STAMP.search(path.name)[0], "%Y%m%dT%H%M%S.%fZ").replace(
        tzinfo=timezone.utc), new_copy_id()) for path in (data_dir / "auto_backups_super").glob("backup-*.json")]
    now = EPOCH + timedelta(minutes=47 * 79, seconds=30)
    policy = make_settings(data_dir, KEEP_LAST=5, KEEP_HOURLY=12, KEEP_DAILY=3)
    BackupStore(policy).prune_history(now=now)
    local = _stamps(path.name for path in (data_dir / "auto_backups_super").glob("backup-*.json"))
    remote = _stamps(remote_kept(names, policy, now))
    assert remote == local and 5 + 3 < len(local) < 80

