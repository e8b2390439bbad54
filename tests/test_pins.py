"""The PIN files: the owner's PIN file is read only when private, restored PINs are random and kept private."""

import json
import os
import stat

import pytest

from sleepguard.exceptions import PinFileError
from sleepguard.pins import (load_pins_file, new_random_pin, pending_pins, read_restored_pins, record_restored_pins,
                             restored_pins_path, with_carried_pins)

PINS = {"anna@example.com": "4821", "bob@example.com": "7390"}


def write_pins(path, content, mode=0o600):
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    os.chmod(path, mode)
    return path


def test_a_missing_pin_file_means_no_pins(tmp_path):
    assert load_pins_file(tmp_path / "pins.json") == {}


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_private_pin_file_is_read(tmp_path, mode):
    assert load_pins_file(write_pins(tmp_path / "pins.json", PINS, mode)) == PINS


@pytest.mark.parametrize("mode, words", [(0o644, "readable by others (mode 0644)"),
                                         (0o640, "readable by others (mode 0640)"),
                                         (0o620, "writable by others (mode 0620)"),
                                         (0o601, "open to others (mode 0601)")])
def test_a_pin_file_open_to_others_is_refused_without_showing_a_pin(tmp_path, mode, words):
    path = write_pins(tmp_path / "pins.json", PINS, mode)
    with pytest.raises(PinFileError) as caught:
        load_pins_file(path)
    message = str(caught.value)
    assert message == f"PIN file {path} is {words}: chmod 600 it"
    assert not any(pin in message for pin in PINS.values())


@pytest.mark.skipif(os.getuid() != 0, reason="only root can give a file to another user")
def test_a_pin_file_of_another_user_is_refused(tmp_path):
    path = write_pins(tmp_path / "pins.json", PINS)
    os.chown(path, 65534, 65534)
    with pytest.raises(PinFileError, match="not by us"):
        load_pins_file(path)


def test_a_symlinked_pin_file_is_refused(tmp_path):
    target = write_pins(tmp_path / "real.json", PINS)
    (tmp_path / "pins.json").symlink_to(target)
    with pytest.raises(PinFileError, match="cannot be opened"):
        load_pins_file(tmp_path / "pins.json")


@pytest.mark.parametrize("content, reason", [
    ('["4821"]', "must be a JSON object"),
    ('{"anna@example.com": 4821}', "entry for 'anna@example.com' must be a non-empty PIN string"),
    ('{"anna@example.com": ""}', "non-empty PIN string"),
    ('{"anna@example.com": "4821", ', "not valid JSON at line 1"),
    ("\udcff", "not valid JSON"),
])
def test_a_malformed_pin_file_is_refused_without_showing_its_content(tmp_path, content, reason):
    path = tmp_path / "pins.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    os.chmod(path, 0o600)
    with pytest.raises(PinFileError, match=reason) as caught:
        load_pins_file(path)
    assert "4821" not in str(caught.value)


def test_random_pins_are_digits_fresh_and_never_a_guessable_run():
    pins = [new_random_pin() for _ in range(2000)]
    assert all(len(pin) == 6 and pin.isdigit() for pin in pins)
    assert len(set(pins)) > 1990
    assert not {"000000", "111111", "123456", "654321", "012345"} & set(pins)
    assert len(new_random_pin(8)) == 8
    with pytest.raises(ValueError):
        new_random_pin(3)


def test_restored_pins_are_merged_privately_and_removed_on_request(tmp_path):
    record_restored_pins(tmp_path, {"bob@example.com": "918273"})
    record_restored_pins(tmp_path, {"anna@example.com": "564738"})
    path = restored_pins_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_restored_pins(tmp_path) == {"anna@example.com": "564738", "bob@example.com": "918273"}
    assert pending_pins(tmp_path) == ["anna@example.com", "bob@example.com"]
    record_restored_pins(tmp_path, {"bob@example.com": None})
    assert pending_pins(tmp_path) == ["anna@example.com"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["restored_pins.json"]  # no temp file left behind


def test_no_restored_pins_means_nothing_pending_and_no_file(tmp_path):
    record_restored_pins(tmp_path, {})
    assert pending_pins(tmp_path) == []
    assert not restored_pins_path(tmp_path).exists()


def test_a_restored_pin_file_opened_to_others_is_refused(tmp_path):
    record_restored_pins(tmp_path, {"anna@example.com": "564738"})
    os.chmod(restored_pins_path(tmp_path), 0o644)
    with pytest.raises(PinFileError, match="readable by others"):
        pending_pins(tmp_path)


def test_pin_file_keys_are_read_in_the_form_the_server_stores_the_address(tmp_path):
    path = write_pins(tmp_path / "pins.json", {"Auntie.Ama@Example.COM": "4821", " bob@EXAMPLE.com ": "7390"})
    assert load_pins_file(path) == {"Auntie.Ama@example.com": "4821", "bob@example.com": "7390"}


def test_two_pin_file_keys_of_one_address_are_a_one_line_error_naming_both_keys_and_no_pin(tmp_path):
    path = write_pins(tmp_path / "pins.json", {"ama@Example.COM": "4821", "ama@example.com": "7390"})
    with pytest.raises(PinFileError) as caught:
        load_pins_file(path)
    message = str(caught.value)
    assert "'ama@Example.COM'" in message and "'ama@example.com'" in message and "\n" not in message
    assert "4821" not in message and "7390" not in message


def test_restored_pins_are_kept_and_read_in_the_stored_form(tmp_path):
    record_restored_pins(tmp_path, {"Ama@Example.COM": "482917"})
    assert read_restored_pins(tmp_path) == {"Ama@example.com": "482917"}
    record_restored_pins(tmp_path, {"Ama@EXAMPLE.com": None})
    assert read_restored_pins(tmp_path) == {}


def test_pins_handed_out_are_forgotten_by_name_or_all_and_a_wrong_name_removes_nothing(tmp_path):
    from sleepguard.pins import hand_out_done
    os.chmod(tmp_path, 0o700)
    record_restored_pins(tmp_path, {"a@example.com": "481920", "b@example.com": "730155", "c@example.com": "902183"})
    assert hand_out_done(tmp_path, ["b@example.com"]) == ["b@example.com"]
    with pytest.raises(PinFileError, match="no new PIN is waiting for x@example.com"):
        hand_out_done(tmp_path, ["a@example.com", "x@example.com"])
    assert pending_pins(tmp_path) == ["a@example.com", "c@example.com"]
    assert hand_out_done(tmp_path) == ["a@example.com", "c@example.com"] and pending_pins(tmp_path) == []
    assert hand_out_done(tmp_path) == []


def test_carried_pins_are_planned_with_in_stored_form_only_where_no_pin_file_is_and_nothing_is_written(tmp_path):
    pins_file = tmp_path / "pins.json"
    carried = ({"Owner@Example.COM": "730581"}, {"new@example.com": "119204"})
    pins, restored = with_carried_pins(pins_file, {}, {"old@example.com": "552013"}, carried)
    assert pins == {"Owner@example.com": "730581"}
    assert restored == {"old@example.com": "552013", "new@example.com": "119204"}
    assert sorted(tmp_path.iterdir()) == []
    # The owner's own PIN file wins over the copy's, as write_carried_pins never writes over it.
    pins_file.write_text(json.dumps({"owner@example.com": "990431"}))
    assert with_carried_pins(pins_file, {"owner@example.com": "990431"}, {}, carried)[0] == {"owner@example.com": "990431"}


def test_carried_pins_that_are_no_pin_map_are_a_one_line_error_showing_no_pin(tmp_path):
    with pytest.raises(PinFileError) as raised:
        with_carried_pins(tmp_path / "pins.json", {}, {}, ({"owner@example.com": ""}, {}))
    assert str(raised.value) == ("PIN file (carried by the off-site copy): the entry for 'owner@example.com' must be a "
                                 "non-empty PIN string")
