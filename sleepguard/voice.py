"""The watcher's voice: each keep-alive round, the verdict told as alerts and beaten as the heartbeat, off the loop.

The keep-alive already runs on a short schedule and sees the back end first hand, so it computes
the verdict (verdict.judge over status.collect_status, with its own ping as the health answer:
no second call) and, through it, notices a sibling service that died. Each round: every reason
of the verdict is an alert condition (alerts.observe debounces it over ALERT_AFTER rounds,
reminds, batches, says "fine again" and starts the sender without waiting); a verdict that got
worse or better and held ALERT_AFTER rounds is said once; the heartbeat is beaten in a thread,
since a hanging receiver may hold a ping for ~43 s. A round whose heartbeat thread is still busy
skips its beat, so a round never waits for one.
"""

import logging
import threading

from . import alerts, heartbeat, verdict as verdicts
from .exceptions import SleepguardError
from .status import collect_status
from .wording import alert_line, verdict_change_line

log = logging.getLogger(__name__)

SEVERITY_OF = {verdicts.NOT_PROTECTED: "critical", verdicts.UNKNOWN: "warning", verdicts.WARNING: "warning"}


def condition_key(reason):
    """One problem's key across rounds: its kind, and which service when one is down."""
    service = reason.facts.get("service")
    return f"{reason.kind}:{service}" if service else reason.kind


def conditions(verdict):
    """The verdict's reasons as alerts.observe's (key, severity, text) conditions."""
    return [(condition_key(reason), SEVERITY_OF.get(reason.severity, "warning"), alert_line(reason))
            for reason in verdict.reasons]


def judge_now(settings, health=None):
    """The verdict now; UNKNOWN with the reason when the status cannot be gathered (a round must go on)."""
    try:
        return verdicts.judge(collect_status(settings, health=health))
    except (SleepguardError, OSError) as exc:
        log.warning("the verdict cannot be computed this round: %s", exc)
        return verdicts.unknown(str(exc))


class VerdictChange:
    """Says once when the verdict got worse or better and the new one held ALERT_AFTER rounds."""

    def __init__(self, alert_after):
        self.alert_after = alert_after
        self.told = None  # the verdict code last settled on; the first one settles silently
        self.candidate, self.streak = None, 0

    def line(self, verdict):
        """The (severity, line) to announce this round, or None."""
        code = verdict.code
        if code == self.told:
            self.candidate, self.streak = None, 0
            return None
        self.streak = self.streak + 1 if code == self.candidate else 1
        self.candidate = code
        if self.streak < self.alert_after:
            return None
        old, self.told, self.candidate, self.streak = self.told, code, None, 0
        if old is None:
            return None
        better = verdicts.RANK.index(code) > verdicts.RANK.index(old)
        severity = "info" if better else SEVERITY_OF.get(code, "warning")
        return severity, verdict_change_line(verdicts.WORDS[code], verdicts.WORDS[old], better)


class Voice:
    """One round's telling: alerts from the verdict, the verdict's change, the heartbeat in its own thread."""

    def __init__(self, settings):
        self.settings = settings
        self.change = VerdictChange(settings.alert_after)
        self.beating = None  # the heartbeat thread of an earlier round, while it runs
        self.last_beat = None  # what the last finished beat did (heartbeat.beat's answer)
        self.beats_skipped = 0

    def tell(self, health=None):
        """Judge, alert, beat; return the verdict. Never raises into the loop, never waits for the network."""
        verdict = judge_now(self.settings, health)
        said = self.change.line(verdict)
        if said is not None:
            alerts.announce(self.settings, *said, send=False)
        alerts.observe(self.settings, conditions(verdict))
        self.beat(verdict)
        return verdict

    def beat(self, verdict):
        """Start this round's heartbeat in a thread, unless the last one still waits on its receiver."""
        if not self.settings.heartbeat_url:
            return
        if self.beating is not None and self.beating.is_alive():
            self.beats_skipped += 1
            log.warning("the heartbeat of an earlier round is still waiting for its receiver: this round's skipped")
            return
        self.beating = threading.Thread(target=self._beat, args=(verdict,), name="heartbeat", daemon=True)
        self.beating.start()

    def _beat(self, verdict):
        self.last_beat = heartbeat.beat(self.settings, verdict)
