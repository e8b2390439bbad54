"""A new watcher takes over: an empty DATA_DIR, the off-site settings and the identity file are enough."""

import shutil

import pytest

from helpers import backup_now, command_env, seed_shop, signs_in
from offsite_helpers import PREFIX, new_identity, offsite_settings, write_pins
from service_helpers import FAST, Services, seeded_view, shop_by_owner, wait_for_figures, wait_until
from sleepguard.exceptions import OffsiteError
from sleepguard.offsite_copies import drain_queue
from sleepguard.offsite_queue import queue_copy
from sleepguard.pins import read_restored_pins
from sleepguard.services import AUTO_BACKUP, AUTO_RESTORE
from sleepguard.store import BackupStore
from sleepguard.takeover import Takeover, needed, take_over


@pytest.fixture
def keys(tmp_path):
    return new_identity(tmp_path / "keys")


def offsite_env(data_dir, url, s3, identity_file, recipient, **overrides):
    """A service's environment on a new machine: the back end, the off-site settings and the identity file."""
    values = {**FAST, "OFFSITE_URL": f"s3://{s3.bucket}/{PREFIX}", "OFFSITE_ENDPOINT_URL": s3.url,
              "OFFSITE_RECIPIENT": recipient, "OFFSITE_IDENTITY_FILE": identity_file}
    return command_env(data_dir, url, **{**values, **overrides})


def copied_shop(demo_backend, data_dir, s3, keys, tmp_path, users=3, customers=4):
    """A shop backed up and copied off-site by the old watcher; returns (shop, its settings)."""
    identity_file, recipient = keys
    shop = seed_shop(demo_backend.url, users=users, customers=customers)
    pins_file = write_pins(tmp_path / "old-pins.json", {email: owner["pin"] for email, owner in shop.items()})
    settings = offsite_settings(data_dir, s3, recipient, str(identity_file), BACKEND_URL=demo_backend.url,
                                PINS_FILE=pins_file)
    outcome = backup_now(settings)
    assert outcome.kind == "good", outcome.reason
    queue_copy(settings, outcome.path)
    assert drain_queue(settings).waiting == 0
    return shop, settings


def test_services_on_a_fresh_data_dir_take_over_and_restore_every_owner_with_their_pin(
        demo_backend, data_dir, moto_s3, keys, tmp_path):
    shop, old = copied_shop(demo_backend, data_dir, moto_s3, keys, tmp_path)
    # The old machine is lost with its DATA_DIR and PIN file; the host wipes the back end.
    shutil.rmtree(data_dir)
    old.pins_file.unlink()
    demo_backend.sleep_now()
    fresh = tmp_path / "new-machine"
    fresh.mkdir(mode=0o700)
    env = offsite_env(fresh, demo_backend.url, moto_s3, str(keys[0]), keys[1])
    with Services() as services:
        services.start(AUTO_RESTORE.name, env)
        services.start(AUTO_BACKUP.name, env)
        wait_for_figures(fresh, AUTO_RESTORE.name, lambda f: f.get("restores", 0) >= 1, 60, "a restore")
        wait_until(lambda: shop_by_owner(demo_backend.url) == seeded_view(shop), 30, "every customer under its owner")
    for email, owner in shop.items():
        assert signs_in(demo_backend.url, email, owner["pin"]), f"{email} lost their PIN"
    # The PIN file the copy carried is the new machine's, closed to others.
    assert (fresh / "pins.json").stat().st_mode & 0o777 == 0o600


def test_take_over_records_the_copy_with_its_back_end_and_pins_then_is_not_needed(
        demo_backend, data_dir, moto_s3, keys, tmp_path):
    shop, old = copied_shop(demo_backend, data_dir, moto_s3, keys, tmp_path, users=2, customers=2)
    fresh = tmp_path / "new-machine"
    fresh.mkdir(mode=0o700)
    settings = offsite_settings(fresh, moto_s3, keys[1], str(keys[0]), BACKEND_URL=demo_backend.url)
    assert needed(settings)
    line = take_over(settings)
    assert "took over" in line
    backup = BackupStore(settings).latest_good_backup()
    original = BackupStore(old).latest_good_backup()
    assert backup.checksum() == original.checksum() and backup.watermark() == original.watermark()
    assert backup.meta["backend_url"] == demo_backend.url
    assert (fresh / "pins.json").stat().st_mode & 0o777 == 0o600
    assert not needed(settings) and "nothing to take over" in take_over(settings)
    assert read_restored_pins(fresh) == {}


def test_an_empty_store_is_a_first_watcher_and_an_unreachable_one_judges_nothing(data_dir, moto_s3, keys):
    settings = offsite_settings(data_dir, moto_s3, keys[1], str(keys[0]), BACKEND_URL="http://127.0.0.1:9")
    assert "starting afresh" in take_over(settings)
    down = offsite_settings(data_dir, moto_s3, keys[1], str(keys[0]), endpoint="http://127.0.0.1:9",
                            BACKEND_URL="http://127.0.0.1:9")
    with pytest.raises(OffsiteError, match="cannot reach"):
        take_over(down)
    # The takeover process reads its settings from the environment, as the services pass theirs on.
    gate = Takeover(down, environ=offsite_env(data_dir, "http://127.0.0.1:9", moto_s3, str(keys[0]), keys[1],
                                              OFFSITE_ENDPOINT_URL="http://127.0.0.1:9", CONNECT_TIMEOUT="1",
                                              RETRIES="0"))
    assert not gate.settled
    assert "not judging yet" in gate.step() and not gate.settled
    assert not (data_dir / "data_backup.json").exists()
