"""Every sentence a person reads about the shop's protection, and the one command that fixes each problem."""

SERVICE_TITLES = {"keep_alive_super_aggressive": "keep-alive", "auto_backup_super_aggressive": "auto-backup",
                  "auto_restore_service": "auto-restore"}
START = "python3 start_all_super_services.py"
NAMES_SHOWN = 3


def ago(seconds):
    """A duration in words a person reads at a glance: 42 s, 5 min, 3 h 4 min, 2 d 3 h."""
    if seconds is None:
        return "?"
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 2:
        return f"{minutes} min"
    if days < 2:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"


def plural(count, word, many=None):
    """'1 user', '2 users': singular and plural right."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def some(names, shown=NAMES_SHOWN):
    """The first few names, joined, with how many more."""
    names = list(names)
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def _reason_words(kind, facts):
    """(what is wrong, the command or step that fixes it) for one verdict reason."""
    if kind == "service_down":
        title = SERVICE_TITLES.get(facts.get("service"), facts.get("service"))
        return f"The {title} service is not running.", START
    if kind == "no_backup":
        return "No backup has been taken yet: nothing is protected.", "python3 manual_backup.py"
    if kind == "backup_stale":
        return (f"The last good backup is {ago(facts.get('age_seconds'))} old; it should be at most "
                f"{ago(facts.get('limit_seconds'))}.", "tail auto_backup_super_aggressive.log")
    if kind == "backup_failing":
        count = facts.get("failures_in_a_row") or 1
        return (f"The last {plural(count, 'backup')} failed: {facts.get('why') or 'see the log'}.",
                "python3 manual_backup.py")
    if kind == "latest_file_damaged":
        return (f"data_backup.json is damaged; the newest good copy is {facts.get('file')}.",
                "python3 manual_backup.py --list")
    if kind == "backend_not_configured":
        return "No back end is set (BACKEND_URL).", "put BACKEND_URL=https://… in .env, or try: " + START + " --demo"
    if kind == "restoring":
        return (f"Restoring the shop's data: {facts.get('users_done')} of "
                f"{plural(facts.get('users_total') or 0, 'user')} back.", "wait; the data is coming back")
    if kind == "backend_down":
        return (f"The back end does not answer ({facts.get('why')}); the data is only in the backup.",
                "check the host; sleepguard restores the data when it is back")
    if kind == "backend_foreign":
        return (f"The back end holds data the backup does not know, so nothing is restored on its own: "
                f"{facts.get('why')}.",
                "python3 manual_backup.py --accept-current (keep it), or python3 restore_simple.py")
    if kind == "backend_wiped":
        missing = len(facts.get("missing_customers") or [])
        return (f"The back end lost its data ({plural(missing, 'customer')} missing); the restore is due.",
                "wait a minute, or run: python3 restore_simple.py")
    if kind == "backend_unknown":
        return f"The back end's data could not be read: {facts.get('why')}.", "tail auto_restore.log"
    if kind == "restore_failing":
        return f"Putting the data back failed: {facts.get('why')}.", "python3 restore_simple.py"
    if kind == "backend_not_checked":
        return "The back end has not been checked against the backup yet.", "wait a minute, then look again"
    if kind == "large_drop_held":
        owners = facts.get("emptied_owners") or []
        emptied = f" ({some(owners)} shows no customers)" if owners else ""
        return (f"A large deletion is held for review{emptied}; the last good backup keeps the data.",
                "python3 manual_backup.py --accept-shrink (only if it was deleted on purpose)")
    if kind == "pins_to_hand_out":
        users = facts.get("users") or []
        return (f"{plural(len(users), 'user')} need{'s' if len(users) == 1 else ''} the new PIN the restore gave "
                f"them: {some(users)}.",
                "cat restored_pins.json, hand them out, then: python3 restore_simple.py --pins-handed-out")
    if kind == "pins_unreadable":
        return f"The restored PINs cannot be read: {facts.get('why')}.", "chmod 600 restored_pins.json"
    if kind == "pins_file_refused":
        return (f"The PIN file is not used: {facts.get('why')}; restored users get new random PINs.",
                "chmod 600 pins.json")
    if kind == "offsite_problem":
        return f"Off-site copies fail: {facts.get('why')}.", "python3 manual_backup.py --offsite-check"
    if kind == "offsite_behind":
        return (f"{plural(facts.get('waiting', 0), 'backup')} wait to be copied off-site.",
                "python3 manual_backup.py --offsite-check")
    if kind == "cannot_tell":
        return f"The status cannot be computed: {facts.get('why')}.", "fix the setting named above"
    return kind.replace("_", " "), ""


def reason_lines(reason):
    """A verdict reason as the status screen shows it: what is wrong, then the fix, each line short."""
    text, fix = _reason_words(reason.kind, reason.facts)
    return [text] + ([f"fix: {fix}"] if fix else [])
