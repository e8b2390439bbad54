"""The heartbeat against a real HTTP receiver: success pings only while PROTECTED, /fail once a problem held."""

import logging
from dataclasses import dataclass, field

from helpers import free_port, make_settings
from service_helpers import wait_until
from sleepguard import heartbeat

T0 = 1_800_000_000.0
CHECK_ID = "0b7c1f52-3d2a-4c11-9e0f-6a1b2c3d4e5f"


@dataclass
class Verdict:
    code: int
    reasons: list = field(default_factory=list)


PROTECTED = Verdict(0)
DOWN = Verdict(2, ["The back end does not answer: python3 keep_alive_super_aggressive.py"])


def settings_for(data_dir, url, **overrides):
    return make_settings(data_dir, **{"HEARTBEAT_URL": url, "ALERT_AFTER": 3, "HEARTBEAT_INTERVAL": 300, **overrides})


def paths(receiver):
    return [request["path"] for request in receiver.received()]


def test_success_pings_only_while_protected_and_fail_once_a_problem_held(data_dir, receiver):
    settings = settings_for(data_dir, f"{receiver.url}/{CHECK_ID}")
    did = [heartbeat.beat(settings, PROTECTED, now=T0), heartbeat.beat(settings, PROTECTED, now=T0 + 100)]
    assert did == ["ping", "quiet"] and paths(receiver) == [f"/{CHECK_ID}"]
    # A problem: no success ping from its first check on, /fail only at the ALERT_AFTER-th.
    did = [heartbeat.beat(settings, DOWN, now=T0 + 300 + i) for i in range(5)]
    assert did == ["waiting", "waiting", "fail", "quiet", "quiet"]
    assert paths(receiver) == [f"/{CHECK_ID}", f"/{CHECK_ID}/fail"]
    body = receiver.received()[-1]["body"]
    assert "NOT PROTECTED" in body and "back end does not answer" in body
    assert heartbeat.beat(settings, DOWN, now=T0 + 700) == "fail"  # reasons again after HEARTBEAT_INTERVAL
    # Back to PROTECTED: a success ping at once, then again only after HEARTBEAT_INTERVAL.
    did = [heartbeat.beat(settings, PROTECTED, now=T0 + 710), heartbeat.beat(settings, PROTECTED, now=T0 + 800),
           heartbeat.beat(settings, PROTECTED, now=T0 + 1010)]
    assert did == ["ping", "quiet", "ping"]
    assert paths(receiver)[-3:] == [f"/{CHECK_ID}/fail", f"/{CHECK_ID}", f"/{CHECK_ID}"]


def test_quiet_checks_leave_the_heartbeat_state_unwritten(data_dir, receiver):
    settings = settings_for(data_dir, f"{receiver.url}/{CHECK_ID}")
    state_file = data_dir / heartbeat.STATE_NAME
    for did, verdict, start in (("ping", PROTECTED, T0), ("fail", DOWN, T0 + 10)):
        beats = [heartbeat.beat(settings, verdict, now=start + i * 0.1) for i in range(3)]
        assert did in beats
        written = state_file.stat()
        # A day of quiet checks, protected or a problem that holds, must not rewrite the file each round.
        assert [heartbeat.beat(settings, verdict, now=start + 1 + i) for i in range(20)] == ["quiet"] * 20
        assert (state_file.stat().st_ino, state_file.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)


def test_a_blip_shorter_than_alert_after_sends_no_fail(data_dir, receiver):
    settings = settings_for(data_dir, f"{receiver.url}/{CHECK_ID}")
    for i, verdict in enumerate([PROTECTED, DOWN, DOWN, PROTECTED, DOWN, DOWN]):
        heartbeat.beat(settings, verdict, now=T0 + i)
    assert not any(path.endswith("/fail") for path in paths(receiver))


def test_the_fail_body_holds_kinds_and_counts_only_and_at_most_10_kb(data_dir, receiver):
    settings = make_settings(data_dir, "http://shop:S3cretPW@127.0.0.1:9", BACKEND_MODE="snapshot",
                             API_TOKEN="tok-5e1f-canary", HEARTBEAT_URL=f"{receiver.url}/{CHECK_ID}", ALERT_AFTER=1)
    reasons = ["2 users need a new PIN: Ama@example.com, B***o@example.com",
               "Restore failed at http://shop:S3cretPW@127.0.0.1:9 with token tok-5e1f-canary",
               *[f"Reason number {i} " + "x" * 80 for i in range(300)]]
    assert heartbeat.beat(settings, Verdict(2, reasons), now=T0) == "fail"
    body = receiver.received()[-1]["body"]
    assert len(body.encode("utf-8")) <= heartbeat.MAX_BODY_BYTES and body.startswith("sleepguard: NOT PROTECTED")
    assert "2 users need a new PIN" in body
    for secret in ("@example.com", "@example.com", "S3cretPW", "tok-5e1f-canary", CHECK_ID):
        assert secret not in body, secret


def test_5xx_is_retried_then_a_warning_never_an_exception(data_dir, receiver, caplog):
    settings = settings_for(data_dir, f"{receiver.url}/{CHECK_ID}")
    receiver.answer(503)
    with caplog.at_level(logging.WARNING):
        assert heartbeat.beat(settings, PROTECTED, now=T0) == "failed"
    assert len(receiver.received()) == 1 + heartbeat.RETRIES
    assert "answered 503" in caplog.text and CHECK_ID not in caplog.text
    receiver.answer(200)
    assert heartbeat.beat(settings, PROTECTED, now=T0 + 1) == "ping"  # a failed ping is tried again next check


def test_timeouts_are_retried_within_bounds(data_dir, receiver, monkeypatch, caplog):
    monkeypatch.setattr(heartbeat, "TIMEOUT", 0.3)
    settings = settings_for(data_dir, f"{receiver.url}/{CHECK_ID}")
    receiver.answer(200, delay=1.0)
    with caplog.at_level(logging.WARNING):
        assert heartbeat.beat(settings, PROTECTED, now=T0) == "failed"
    assert "failed: ReadTimeout" in caplog.text
    # The receiver notes a request once its delay is over: wait for the last one.
    wait_until(lambda: len(receiver.received()) == 1 + heartbeat.RETRIES, 10, "the last retry at the receiver")
    assert CHECK_ID not in caplog.text


def test_nobody_listening_is_a_warning(data_dir, caplog):
    settings = settings_for(data_dir, f"http://127.0.0.1:{free_port()}/{CHECK_ID}")
    with caplog.at_level(logging.WARNING):
        assert heartbeat.beat(settings, PROTECTED, now=T0) == "failed"
    assert "heartbeat http (" in caplog.text and CHECK_ID not in caplog.text


def test_no_heartbeat_url_no_heartbeat(data_dir):
    assert heartbeat.beat(make_settings(data_dir), PROTECTED) == "off"
    assert not (data_dir / heartbeat.STATE_NAME).exists()


def test_the_check_id_stays_out_of_the_log_even_at_debug(data_dir, receiver, caplog):
    settings = settings_for(data_dir, f"{receiver.url}/{CHECK_ID}")
    caplog.set_level(logging.DEBUG)
    # urllib3's own level too: an in-process --test-alert earlier in this worker keeps it at WARNING.
    caplog.set_level(logging.DEBUG, logger="urllib3")
    assert heartbeat.beat(settings, PROTECTED, now=T0) == "ping"
    assert "GET /***" in caplog.text and CHECK_ID not in caplog.text


@dataclass(frozen=True)
class Reason:
    """Shaped like verdict.Reason: a severity, a kind and the figures to say it."""

    severity: int
    kind: str
    facts: dict = field(default_factory=dict)


def test_structured_reasons_go_out_as_kinds_and_counts_only(data_dir, receiver):
    settings = settings_for(data_dir, f"{receiver.url}/{CHECK_ID}", ALERT_AFTER=1)
    verdict = Verdict(2, [Reason(2, "backup_failing", {"failures_in_a_row": 3, "why": "disk full at /home/shop"}),
                          Reason(1, "pins_to_hand_out", {"users": ["a@example.com", "b@example.com"]})])
    assert heartbeat.beat(settings, verdict, now=T0) == "fail"
    body = receiver.received()[-1]["body"]
    assert body == ("sleepguard: NOT PROTECTED\n- backup_failing (failures_in_a_row: 3)\n"
                    "- pins_to_hand_out (users: 2)")
