"""Demo mode: the settings a command uses while the launcher's demo runs, and what of a real shop never follows them."""

import pytest

from helpers import make_settings
from sleepguard.demo_mode import demo_settings, refuse_mixing, uses_demo, with_running_demo
from sleepguard.exceptions import SettingsError
from sleepguard.services import demo_folder_path, demo_token_path

DEMO_URL = "http://127.0.0.1:40123"


def test_demo_settings_put_every_file_in_the_demos_folder_and_leave_a_real_shops_set_up_behind(data_dir):
    real = make_settings(data_dir, "", API_TOKEN="real-token-0a1b2c", ALERT_URLS="ntfy://real-shop-topic",
                         HEARTBEAT_URL="https://hc-ping.example.com/real", OFFSITE_URL="s3://real-shop/copies",
                         PINS_FILE=str(data_dir / "real-pins.json"))
    folder = demo_folder_path(data_dir)
    folder.mkdir(mode=0o700)
    demo_token_path(folder).write_text("demo-token-9f8e7d\n")
    demo = demo_settings(real, DEMO_URL)
    assert (demo.backend_url, demo.snapshot_url) == (DEMO_URL, f"{DEMO_URL}/api/admin/snapshot")
    assert demo.data_dir == folder and demo.pins_file == folder / "pins.json"
    assert demo.api_token == "demo-token-9f8e7d", "the demo's own token, never API_TOKEN"
    assert (demo.alert_urls, demo.alert_config, demo.heartbeat_url, demo.offsite_url) == ("", "", "", "")


def test_without_a_running_demo_the_settings_are_left_as_they_are(data_dir, caplog):
    settings = make_settings(data_dir, "")
    assert with_running_demo(settings) is settings
    assert caplog.records == []


def test_only_an_unset_backend_url_or_the_demos_own_uses_it_and_another_is_refused(data_dir):
    assert uses_demo(make_settings(data_dir, ""), DEMO_URL) and uses_demo(make_settings(data_dir, DEMO_URL), DEMO_URL)
    assert not uses_demo(make_settings(data_dir, ""), None)
    other = make_settings(data_dir, "https://user:secret@shop.example.com")
    assert not uses_demo(other, DEMO_URL)
    for url, demo in ((DEMO_URL, False), (None, True)):
        with pytest.raises(SettingsError, match="choose one") as refused:
            refuse_mixing(other, url, demo)
        assert "secret" not in str(refused.value) and "https://shop.example.com" in str(refused.value)
    refuse_mixing(make_settings(data_dir, ""), DEMO_URL, True)
    refuse_mixing(other, None, False)
