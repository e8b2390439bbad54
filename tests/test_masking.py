"""What may leave the machine: masked addresses, URL labels, and the one scrub every outgoing text passes."""

import logging
import re

import pytest

from helpers import make_settings
from sleepguard import masking

URL_B = "ntfy://mysecrettopic42"


@pytest.mark.parametrize("address, masked", [
    ("Ama@example.com", "A***a@example.com"), ("a@example.com", "a***@example.com"),
    ("Bo@shop.example.com", "B***o@shop.example.com"),
])
def test_masked_addresses(address, masked):
    assert masking.mask_email(address) == masked
    assert masking.scrub(f"user {address} waits") == f"user {masked} waits"
    assert masking.scrub(f"user {address} waits", emails="drop") == "user a user waits"


def test_a_url_is_shown_as_its_service_and_a_fingerprint():
    label = masking.describe_url(URL_B)
    assert re.fullmatch(r"ntfy \([0-9a-f]{4}\)", label) and "mysecrettopic42" not in label
    assert masking.describe_url(URL_B) != masking.describe_url("ntfy://othertopic99")
    assert masking.scrub(f"could not reach {URL_B} now") == f"could not reach {label} now"


def test_secret_parts_of_alert_urls_are_found_but_plain_words_are_not():
    assert "mysecrettopic42" in masking.url_secrets(URL_B)
    assert "S3cretPW" in masking.url_secrets("mailto://shop:S3cretPW@example.com")
    assert "123456789:AAsecretTOKEN" in masking.url_secrets("tgram://123456789:AAsecretTOKEN/987")
    # A topic that is a plain short word is no secret worth hiding: "backups" in a text survives.
    assert masking.url_secrets("ntfy://backups") == ["ntfy://backups"]


def test_settings_secrets_cover_the_token_and_every_secret_url(tmp_path):
    settings = make_settings(tmp_path, "http://shop:S3cretPW@127.0.0.1:9", BACKEND_MODE="snapshot",
                             API_TOKEN="tok-5e1f-canary", ALERT_URLS=URL_B,
                             HEARTBEAT_URL="https://hc-ping.com/0b7c1f52-3d2a-4c11-9e0f-6a1b2c3d4e5f")
    text = ("tok-5e1f-canary S3cretPW mysecrettopic42 0b7c1f52-3d2a-4c11-9e0f-6a1b2c3d4e5f "
            "and the snapshot word stays")
    assert masking.scrub(text, masking.settings_secrets(settings)) == "*** *** *** *** and the snapshot word stays"


def test_pins_written_as_digits_are_hidden_but_counts_stay():
    assert masking.scrub("PIN 4821, pins: 004821; 12 users need a new PIN") == \
        "PIN ***, pins: ***; 12 users need a new PIN"


def test_scrub_filter_rewrites_a_library_log_line(caplog):
    masking.guard_logger("sleepguard-test-library", ["s3cret-token"])
    with caplog.at_level(logging.INFO):
        logging.getLogger("sleepguard-test-library").info("posting to %s with %s", URL_B, "s3cret-token")
    assert "mysecrettopic42" not in caplog.text and "s3cret-token" not in caplog.text
    assert re.search(r"posting to ntfy \([0-9a-f]{4}\) with \*\*\*", caplog.text)
