"""Choosing the backup a restore starts from: the newest good one, or a file inside DATA_DIR."""

import pytest

from helpers import backup_now, make_settings, seed_shop
from sleepguard.exceptions import BackupFileError, RestoreError
from sleepguard.source import choose_backup


def test_without_a_file_the_latest_good_backup_is_chosen_and_said(demo_backend, data_dir):
    seed_shop(demo_backend.url, users=2, customers=1)
    settings = make_settings(data_dir, demo_backend.url)
    assert backup_now(settings).kind == "good"
    backup, line, carried_pins = choose_backup(settings)
    assert backup.counts()["users"] == 2 and carried_pins is None
    assert line == f"{data_dir / 'data_backup.json'} (2 users, 2 customers, 2 orders)"


def test_no_backup_an_owner_without_a_file_and_a_file_outside_data_dir_are_refused(data_dir, tmp_path):
    settings = make_settings(data_dir)
    with pytest.raises(BackupFileError, match="no good backup in "):
        choose_backup(settings)
    with pytest.raises(RestoreError, match="applies only to a legacy file"):
        choose_backup(settings, owner_email="a@example.com")
    (tmp_path / "elsewhere.json").write_text("{}")
    with pytest.raises(RestoreError, match="is outside DATA_DIR"):
        choose_backup(settings, str(tmp_path / "elsewhere.json"))
