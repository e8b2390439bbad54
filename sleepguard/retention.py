"""The retention rule of backups, pure: which of a list of backup times to keep, wherever the copies live.

The local history and the off-site copies keep the same backups, so there is one rule:
the newest KEEP_LAST, the newest of each of the last KEEP_HOURLY hours and of the last
KEEP_DAILY days (UTC), counted back from now.
"""

from datetime import timedelta


def kept_by_policy(newest_first, keep_last, keep_hourly, keep_daily, now):
    """The keys to keep from [(key, created time in UTC), ...] sorted newest first."""
    keep = {key for key, _created in newest_first[:keep_last]}
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    open_hours = {this_hour - timedelta(hours=n) for n in range(keep_hourly)}
    open_days = {now.date() - timedelta(days=n) for n in range(keep_daily)}
    for key, created in newest_first:
        hour, day = created.replace(minute=0, second=0, microsecond=0), created.date()
        if hour in open_hours:
            open_hours.discard(hour)
            keep.add(key)
        if day in open_days:
            open_days.discard(day)
            keep.add(key)
    return keep
