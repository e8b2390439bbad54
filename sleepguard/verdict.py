"""Is the shop protected? One verdict from the status facts, for the status screen, --json, alerts and heartbeat.

The rule (DESIGN.md invariant 8): PROTECTED only when the three services run, the last good
backup is fresh and verified, the back end's latest check found that backup's data on it,
no restore is pending, running or failing, and nothing is held for the owner. Data safe but
the owner must act (new PINs to hand out, a large deletion held) is WARNING; data only in
the backup, or not backed up, is NOT PROTECTED; bad settings or no way to tell is UNKNOWN.
Exit codes are the monitoring plugins' (0, 1, 2, 3), so cron, systemd or Nagios use it as it is.
Reasons carry a kind and figures, never sentences: wording.py says them.
"""

from dataclasses import dataclass, field

PROTECTED, WARNING, NOT_PROTECTED, UNKNOWN = 0, 1, 2, 3
WORDS = {PROTECTED: "PROTECTED", WARNING: "WARNING", NOT_PROTECTED: "NOT PROTECTED", UNKNOWN: "UNKNOWN"}
# Worst first, as monitoring plugins rank them: a known danger outranks not knowing.
RANK = (NOT_PROTECTED, UNKNOWN, WARNING, PROTECTED)
# Verdicts of the restore service's check that mean the back end holds the backup's data.
DATA_ON_BACKEND = ("first", "unchanged", "changed", "deleted")


@dataclass(frozen=True)
class Reason:
    """One thing standing between the shop and PROTECTED: its severity, its kind and the figures to say it."""

    severity: int
    kind: str
    facts: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Verdict:
    """The verdict, its exit code and its reasons, worst first."""

    code: int
    reasons: tuple = ()

    @property
    def word(self):
        return WORDS[self.code]

    def to_json(self):
        return {"code": self.code, "verdict": self.word,
                "reasons": [{"severity": WORDS[r.severity], "kind": r.kind, **r.facts} for r in self.reasons]}


def _services(status):
    for service in status.get("services", []):
        if service.get("state") != "running":
            yield Reason(NOT_PROTECTED, "service_down", {"service": service.get("service"),
                                                         "state": service.get("state")})


def _backups(status):
    backup, last = status.get("last_good_backup"), status.get("last_backup") or {}
    if backup is None:
        yield Reason(NOT_PROTECTED, "no_backup")
        return
    if not backup.get("fresh"):
        yield Reason(NOT_PROTECTED, "backup_stale", {"age_seconds": backup.get("age_seconds"),
                                                     "limit_seconds": backup.get("fresh_limit_seconds")})
    if last.get("kind") == "failed":
        yield Reason(NOT_PROTECTED, "backup_failing", {"failures_in_a_row": last.get("failures_in_a_row") or 1,
                                                       "why": last.get("why")})
    if not backup.get("latest_file_ok", True):
        yield Reason(WARNING, "latest_file_damaged", {"file": backup.get("file")})


def _backend(status):
    backend, check = status.get("backend") or {}, status.get("last_check") or {}
    if not backend.get("configured"):
        yield Reason(UNKNOWN, "backend_not_configured")
        return
    restore = status.get("restore") or {}
    if restore.get("running"):
        yield Reason(NOT_PROTECTED, "restoring", {"users_done": restore.get("users_done"),
                                                  "users_total": restore.get("users_total")})
        return
    if backend.get("reachable") is False:
        yield Reason(NOT_PROTECTED, "backend_down", {"why": backend.get("error")})
        return
    verdict = check.get("verdict")
    if verdict == "foreign":
        yield Reason(NOT_PROTECTED, "backend_foreign", {"why": check.get("reason")})
    elif verdict == "wipe":
        yield Reason(NOT_PROTECTED, "backend_wiped", {"missing_users": check.get("missing_users"),
                                                      "missing_customers": check.get("missing_customers")})
    elif verdict == "unknown":
        yield Reason(NOT_PROTECTED, "backend_unknown", {"why": check.get("reason")})
    elif restore.get("complete") is False:
        yield Reason(NOT_PROTECTED, "restore_failing", {"why": restore.get("what")})
    elif verdict is None and status.get("last_good_backup") is not None:
        yield Reason(UNKNOWN, "backend_not_checked")


def _held(status):
    verdicts = {suspect.get("verdict") for suspect in status.get("suspects_held", [])}
    check = (status.get("last_check") or {}).get("verdict")
    if "large_drop" in verdicts or check == "large_drop":
        yield Reason(WARNING, "large_drop_held", {"held": len(status.get("suspects_held", [])),
                                                  "emptied_owners": (status.get("last_check") or {}).get(
                                                      "emptied_owners") or []})


def _pins(status):
    waiting = status.get("pins_to_hand_out") or []
    if waiting:
        yield Reason(WARNING, "pins_to_hand_out", {"users": list(waiting), "file": status.get("pins_path")})
    if status.get("pins_problem"):
        yield Reason(WARNING, "pins_unreadable", {"why": status["pins_problem"], "file": status.get("pins_path")})
    if status.get("pins_file_problem"):
        yield Reason(WARNING, "pins_file_refused", {"why": status["pins_file_problem"], "users": len(waiting),
                                                       "file": status.get("pins_file")})


def _offsite(status):
    offsite = status.get("offsite")
    if offsite and offsite.get("problem"):
        yield Reason(WARNING, "offsite_problem", {"why": offsite["problem"]})
    elif offsite and offsite.get("waiting", 0) > offsite.get("max_behind", 3):
        yield Reason(WARNING, "offsite_behind", {"waiting": offsite["waiting"]})


CHECKS = (_services, _backend, _backups, _held, _pins, _offsite)


def judge(status):
    """The verdict for a status dict (status.collect_status's), reasons worst first; pure, no I/O."""
    reasons = [reason for check in CHECKS for reason in check(status)]
    reasons.sort(key=lambda reason: RANK.index(reason.severity))
    code = reasons[0].severity if reasons else PROTECTED
    return Verdict(code, tuple(reasons))


def unknown(why):
    """The verdict when the status cannot be computed at all (bad settings or arguments)."""
    return Verdict(UNKNOWN, (Reason(UNKNOWN, "cannot_tell", {"why": why}),))
