"""The alert sender as a real process, apprise posting to real HTTP receivers (json://): delivered once, lost never."""

import fcntl
import os
import signal
import subprocess
import sys
import time

from helpers import PROJECT_DIR, command_env, free_port, make_settings
from service_helpers import wait_until
from sleepguard import alerts
from sleepguard.alert_sender import test_alert as send_test_alert
from sleepguard.masking import describe_url

DEADLINE = 30
DOWN = ("backend_down", "critical", "The back end does not answer")


def settings_and_env(data_dir, urls, **overrides):
    """The same settings in-process (to queue) and as an environment (for the sender process)."""
    values = {"ALERT_URLS": " ".join(urls), "ALERT_AFTER": 2, "ALERT_BATCH_SECONDS": 0.2,
              "ALERT_RETRY_SECONDS": 0.2, "ALERT_TIMEOUT": 5, **overrides}
    return make_settings(data_dir, **values), command_env(data_dir, **values)


def run_sender(env, timeout=DEADLINE):
    return subprocess.run([sys.executable, "-m", "sleepguard.alert_sender"], cwd=PROJECT_DIR, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def checks_until(settings, conditions, done, what):
    """Call observe at every poll, as a service's loop would, until done(); fail with what at the deadline."""
    return wait_until(lambda: alerts.observe(settings, conditions) is None or done(), DEADLINE, what)


def send_until_empty(settings, env, rounds=40):
    """Run the sender as the service would, again and again, until the outbox is empty (or rounds run out)."""
    for _ in range(rounds):
        if not alerts.read_outbox(settings)["messages"]:
            return True
        run_sender(env)
        time.sleep(settings.alert_retry_seconds)
    return not alerts.read_outbox(settings)["messages"]


def test_one_message_per_event_with_the_right_words_and_nothing_secret(data_dir, receiver, monkeypatch):
    settings, env = settings_and_env(data_dir, [receiver.apprise_url], ALERT_AFTER=2)
    # start_sender passes the service's own environment on, as the launcher set it.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    problem = ("restore_failing", "critical", "The restore fails for Ama@example.com (PIN 4821): disk full")
    # The service's loop: observe every check; observe itself starts the sender once the batch is due.
    checks_until(settings, [problem], receiver.notifications, "the alert")
    checks_until(settings, [], lambda: len(receiver.notifications()) >= 2
                 and not alerts.read_outbox(settings)["messages"], "the all-clear, and an empty outbox")
    first, second = receiver.notifications()
    assert first["title"] == "sleepguard: problem" and first["type"] == "failure"
    assert first["message"].startswith("The restore fails for A***a@example.com (PIN ***): disk full")
    assert second["title"] == "sleepguard: fine again" and second["type"] == "success"
    assert "Fine again: The restore fails" in second["message"]
    everything = str(receiver.received())
    assert "Ama@example.com" not in everything and "4821" not in everything


def test_a_blip_sends_nothing(data_dir, receiver, monkeypatch):
    settings, env = settings_and_env(data_dir, [receiver.apprise_url], ALERT_AFTER=3)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for conditions in ([DOWN], [DOWN], [], [DOWN], []):
        alerts.observe(settings, conditions)
    assert run_sender(env).returncode == 0
    assert receiver.received() == [] and alerts.read_outbox(settings)["messages"] == []


def test_reminders_arrive_at_alert_repeat(data_dir, receiver):
    settings, env = settings_and_env(data_dir, [receiver.apprise_url], ALERT_AFTER=1, ALERT_REPEAT=0.5,
                                     ALERT_BATCH_SECONDS=0.05)
    # 1.8 s of checks every 0.1 s, on the clock of a moment ago so that every batch is due now.
    start = time.time() - 100
    for check in range(19):
        alerts.observe(settings, [DOWN], now=start + check * 0.1, send=False)
    assert send_until_empty(settings, env)
    texts = [n["message"] for n in receiver.notifications()]
    # The alert at 0 s, then a reminder at 0.5, 1.0 and 1.5 s.
    assert texts[0].startswith("The back end does not answer") and len(texts) == 4, texts
    assert all(text.startswith("Still a problem since") for text in texts[1:]), texts


def test_a_burst_is_one_message(data_dir, receiver):
    settings, env = settings_and_env(data_dir, [receiver.apprise_url], ALERT_BATCH_SECONDS=60)
    # Three alerts within a minute of the first, a minute and more ago; one more just now, in a batch of its own.
    first = time.time() - 100
    alerts.announce(settings, "info", "A wipe was restored: 2 users and 5 customers are back", now=first, send=False)
    alerts.announce(settings, "warning", "2 users need a new PIN: restore_simple.py --show-pins", now=first + 20,
                    send=False)
    alerts.announce(settings, "critical", "Backups are failing", now=first + 59, send=False)
    alerts.announce(settings, "info", "Still collecting", send=False)
    assert run_sender(env).returncode == 0
    (message,) = receiver.notifications()
    assert message["title"] == "sleepguard: problem (3 alerts)"
    assert "- A wipe was restored" in message["message"] and "- Backups are failing" in message["message"]
    (waiting,) = alerts.read_outbox(settings)["messages"]
    assert waiting["lines"] == ["Still collecting"] and not waiting["deliveries"]


def test_a_receiver_down_for_several_periods_gets_every_alert_once_when_up(data_dir, start_receiver):
    steady, flaky = start_receiver(), start_receiver()
    settings, env = settings_and_env(data_dir, [steady.apprise_url, flaky.apprise_url], ALERT_AFTER=2,
                                     ALERT_BATCH_SECONDS=0.05, ALERT_RETRY_SECONDS=0.05)
    flaky.stop()
    # Two problems come and go while flaky is down, each over several ALERT_AFTER periods: four alerts,
    # each its own message; the sender runs (and fails for flaky) whenever one is due, as a service would.
    for problem in range(2):
        condition = (f"problem_{problem}", "critical", f"Problem number {problem}")
        for conditions in ([condition], [condition], [condition], [condition], [], []):
            if alerts.observe(settings, conditions, send=False):
                time.sleep(0.06)
                assert run_sender(env).returncode == 0
    assert len(steady.notifications()) == 4 and alerts.read_outbox(settings)["messages"]
    flaky.start()
    assert send_until_empty(settings, env)
    expected = sorted([f"Problem number {p}" for p in range(2)] + [f"Fine again: Problem number {p}" for p in range(2)])
    for receiver in (steady, flaky):
        got = sorted(n["message"].split("\n")[0] for n in receiver.notifications())
        assert got == expected


def test_kill_9_of_the_sender_loses_nothing_and_duplicates_at_most_one_per_kill(data_dir, receiver):
    settings, env = settings_and_env(data_dir, [receiver.apprise_url], ALERT_BATCH_SECONDS=0.01)
    base = time.time() - 100
    events = 12
    for i in range(events):
        # A second apart in the past: each its own message, all due.
        alerts.announce(settings, "info", f"Event {i:02d}", now=base + i, send=False)
    receiver.answer(delay=0.15)
    kills = 0
    for pause in (0.4, 0.55, 0.7, 0.85, 1.0, 1.2):
        if not alerts.read_outbox(settings)["messages"]:
            break
        sender = subprocess.Popen([sys.executable, "-m", "sleepguard.alert_sender"], cwd=PROJECT_DIR, env=env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(pause)
        if sender.poll() is None:
            sender.send_signal(signal.SIGKILL)
            kills += 1
        sender.wait(10)
    receiver.answer(delay=0)
    assert kills >= 3, "the sender finished before it could be killed: slow the receiver down"
    assert send_until_empty(settings, env)
    # Nothing lost: each event reached the receiver in a send the sender saw answered. A kill while the
    # receiver is still answering leaves an unanswered copy: the one duplicate per kill it may cost.
    answered = [n["message"].split("\n")[0] for n in receiver.notifications()]
    arrived = [n["message"].split("\n")[0] for n in receiver.notifications(answered_only=False)]
    assert sorted(set(answered)) == [f"Event {i:02d}" for i in range(events)]
    assert len(arrived) - events <= kills, arrived


def test_one_sender_at_a_time(data_dir, receiver):
    settings, env = settings_and_env(data_dir, [receiver.apprise_url], ALERT_BATCH_SECONDS=0.01)
    alerts.announce(settings, "info", "Held back while another sender runs", now=time.time() - 5, send=False)
    fd = os.open(data_dir / alerts.SENDER_LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert alerts.sender_running(settings) and alerts.start_sender(settings) is None
        assert run_sender(env).returncode == 0 and receiver.received() == []
    finally:
        os.close(fd)
    assert run_sender(env).returncode == 0 and len(receiver.notifications()) == 1


def test_apprise_never_logs_a_secret_even_at_debug(data_dir, receiver):
    port = receiver.port
    secret_urls = [f"json://shop:S3cretPW@127.0.0.1:{port}/", "ntfyx://mysecrettopic42", "json://127.0.0.1:9/"]
    settings, env = settings_and_env(data_dir, secret_urls, LOG_LEVEL="DEBUG", ALERT_BATCH_SECONDS=0.01)
    alerts.announce(settings, "info", "Secret-free news", now=time.time() - 5, send=False)
    result = run_sender(env)
    assert result.returncode == 0
    log = (data_dir / alerts.SENDER_LOG_NAME).read_text() + result.stdout + result.stderr
    assert "delivered to json" in log and "not delivered to ntfyx" in log
    for secret in ("S3cretPW", "mysecrettopic42"):
        assert secret not in log and secret not in (data_dir / alerts.OUTBOX_NAME).read_text()
    assert len(receiver.notifications()) == 1


def test_test_alert_says_per_url_delivered_or_why_not(data_dir, receiver):
    closed = f"json://127.0.0.1:{free_port()}/"
    settings = make_settings(data_dir, ALERT_URLS=f"{receiver.apprise_url} {closed} ntfyx://mysecrettopic42",
                             ALERT_TIMEOUT=5)
    results = send_test_alert(settings)
    assert [r.label for r in results] == [describe_url(receiver.apprise_url), describe_url(closed),
                                          describe_url("ntfyx://mysecrettopic42")]
    assert [r.delivered for r in results] == [True, False, False]
    assert "connection error" in results[1].reason.lower() and "apprise does not accept" in results[2].reason
    assert "mysecrettopic42" not in str(results)
    (message,) = receiver.notifications()
    assert message["title"] == "sleepguard: test alert"


def test_an_apprise_config_file_is_a_source_of_urls(data_dir, receiver):
    config = data_dir / "apprise.txt"
    config.write_text(f"{receiver.apprise_url}\n")
    settings, env = settings_and_env(data_dir, [], ALERT_CONFIG=str(config), ALERT_BATCH_SECONDS=0.01)
    alerts.announce(settings, "info", "From the config file", now=time.time() - 5, send=False)
    assert run_sender(env).returncode == 0
    assert [n["message"].split("\n")[0] for n in receiver.notifications()] == ["From the config file"]
    assert alerts.read_outbox(settings)["messages"] == []


def test_the_sender_is_bounded_by_alert_timeout(data_dir, receiver):
    settings, env = settings_and_env(data_dir, [receiver.apprise_url], ALERT_TIMEOUT=1, ALERT_BATCH_SECONDS=0.01)
    alerts.announce(settings, "info", "Slow news", now=time.time() - 5, send=False)
    receiver.answer(delay=20)
    started = time.monotonic()
    assert run_sender(env, timeout=20).returncode == 0
    assert time.monotonic() - started < 15  # one URL's timeout plus apprise's own socket wait, not the 20 s
    (message,) = alerts.read_outbox(settings)["messages"]
    (record,) = message["deliveries"].values()
    assert record["delivered"] is None and record["attempts"] == 1 and "timeout" in record["error"]


def test_observe_starts_the_sender_and_does_not_wait_for_it(data_dir, receiver, monkeypatch):
    settings, env = settings_and_env(data_dir, [receiver.apprise_url], ALERT_AFTER=1, ALERT_BATCH_SECONDS=0.01)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    receiver.answer(delay=2)  # within ALERT_TIMEOUT and apprise's own 4 s read timeout
    alerts.announce(settings, "info", "Slow to deliver", now=time.time() - 5, send=False)
    alerts.observe(settings, [])  # nothing new this check, but a message is due: observe starts the sender
    sender = alerts._sender
    # observe came back while its sender still waits on the slow receiver: the loop goes on meanwhile.
    assert sender is not None and sender.poll() is None
    assert alerts.start_sender(settings) is None  # one sender at a time
    assert sender.wait(30) == 0
    assert [n["message"].split("\n")[0] for n in receiver.notifications()] == ["Slow to deliver"]
