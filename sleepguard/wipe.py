"""Detecting a wipe: judge a fresh read against the last good backup (DESIGN.md, "Detecting a wipe").

An in-memory back end loses everything at once. Records keep their ids only while the back
end keeps them, so a read that lacks records of the last good backup while *none* of that
backup's ids survived is a wipe; if some survived, the owner deleted the rest on purpose.
A wipe also leaves nothing older than the backup's watermark (the newest server timestamp
it holds): a read with no survivor but with unknown records older than that, or a backup
from another back end or from the earlier scripts, is *foreign* — never restored on its own.
"""

from dataclasses import dataclass, field

from .snapshot import server_time
from .urls import same_backend, without_credentials

GOOD_VERDICTS = ("first", "unchanged", "changed", "deleted")
# Fewer lost records than this are never called a large drop: deleting one of three customers is normal.
LARGE_DROP_MIN_RECORDS = 2


@dataclass
class Judgement:
    """What a read means compared with the last good backup, with the figures behind it."""

    verdict: str  # first | unchanged | changed | deleted | large_drop | wipe | foreign
    reason: str
    missing_users: list = field(default_factory=list)
    missing_customers: list = field(default_factory=list)
    survivors: int = 0
    emptied_owners: list = field(default_factory=list)

    @property
    def good(self):
        """True when the read may become the new good backup."""
        return self.verdict in GOOD_VERDICTS


def judge_read(current, last_good, large_drop_fraction=0.5, backend_url=None):
    """Compare a fresh read with the last good backup and say whether it is good, a deletion, a wipe or foreign.

    backend_url is the back end the read came from; when given, a backup recorded from another one is foreign.
    """
    if last_good is None:
        return Judgement("first", "no earlier good backup")
    if current.checksum() == last_good.checksum():
        return same_content()
    missing_users = sorted(set(last_good.customers_by_email()) - set(current.customers_by_email()))
    missing_customers = sorted(last_good.customer_keys() - current.customer_keys())
    if not missing_users and not missing_customers:
        return Judgement("changed", "nothing of the last good backup is missing")
    survivors = len((current.record_ids() & last_good.record_ids()) - {None})
    figures = dict(missing_users=missing_users, missing_customers=missing_customers, survivors=survivors)
    lost = f"{len(missing_users)} users and {len(missing_customers)} customers of the last good backup are missing"
    if not survivors:
        foreign = foreign_reason(current, last_good, backend_url)
        if foreign:
            return Judgement("foreign", f"{lost}, and {foreign}", **figures)
        return Judgement("wipe", f"{lost} and none of its records survived: the back end was wiped", **figures)
    emptied = _owners_emptied(current, last_good)
    if emptied:
        return Judgement("large_drop", f"{lost}; every customer of {', '.join(emptied)} vanished at once",
                         emptied_owners=emptied, **figures)
    before = last_good.counts()
    for kind, count in (("customers", len(missing_customers)), ("users", len(missing_users))):
        if count >= LARGE_DROP_MIN_RECORDS and count > large_drop_fraction * before[kind]:
            return Judgement("large_drop", f"{lost}: over {large_drop_fraction:.0%} of the {kind} at once", **figures)
    return Judgement("deleted", f"{lost}, {survivors} records survived: deleted by the owner", **figures)


def same_content():
    """The judgement of a read whose checksum is the last good backup's: unchanged, nothing else to look at."""
    return Judgement("unchanged", "same content as the last good backup")


def foreign_reason(current, last_good, backend_url=None):
    """Why the back end read is not the one the backup saw holding its data, or '' when it may be."""
    if last_good.meta.get("mode") == "legacy":
        return "the backup is a legacy file of the earlier scripts: sleepguard never saw this back end hold its data"
    recorded = last_good.meta.get("backend_url")
    if backend_url and recorded and not same_backend(recorded, backend_url):
        return (f"the backup came from {without_credentials(recorded)}, not from the back end watched now "
                f"({without_credentials(backend_url)})")
    watermark = last_good.watermark()
    if watermark is None:
        return ""
    known = last_good.record_ids()
    older = [record for record in current.records()
             if record.get("id") not in known and (server_time(record) or watermark) < watermark]
    if older:
        return (f"the back end holds {len(older)} record{'' if len(older) == 1 else 's'} older than the last good "
                "backup that it does not know: it is not the back end that backup came from, or someone else "
                "put data into it")
    return ""


def _owners_emptied(current, last_good):
    """Owners still present whose customers all vanished: the API's `[]`-on-error quirk (a poisoned list) looks so."""
    now = current.customers_by_email()
    return sorted(email for email, customers in last_good.customers_by_email().items()
                  if customers and email in now and not now[email])
