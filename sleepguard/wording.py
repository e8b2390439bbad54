"""Every sentence a person reads about a restore plan, a restore report, a backup and the backups kept.

The commands print these, the status screen and the alerts show them; this is also the one module
of the library that names command-line flags, in the hints that say which command fixes what.
"""

from .plan import (MISSING_UNOWNED, NO_OWNER_SEVERAL_USERS, OWNER_NOT_IN_BACKUP, PIN_FROM_BACKUP, PIN_FROM_PINS_FILE,
                   PIN_FROM_RESTORED, PIN_NEW_RANDOM, customer_label)
from .masking import mask_email
from .services import AUTO_BACKUP, AUTO_RESTORE, program_named
from .store import LATEST_NAME

MISSING_SHOWN = 10
NAMES_SHOWN = 3
START = "python3 start_all_super_services.py"

# --- hints: which command, with which flag, fixes what ---
OWNER_HINT = "use --owner EMAIL"
ACCEPT_SHRINK_HINT = "python3 manual_backup.py --accept-shrink"
RESTORE_AGAIN_HINT = "run restore_simple.py again to finish the job"
NO_ANSWER = ("no answer on stdin (it is closed or at its end): nothing was changed; use --yes to restore "
             "without being asked")
STOPPING = "stopping: nothing new starts, the requests in flight finish; Ctrl-C again to quit at once"
QUIT_AT_ONCE = ("quit at once, not waiting for the requests in flight: restored_pins.json may hold PINs of "
                f"accounts not created yet; {RESTORE_AGAIN_HINT}")

PIN_WORDS = {PIN_FROM_PINS_FILE: "PIN from the PIN file", PIN_FROM_BACKUP: "PIN from the backup file",
             PIN_FROM_RESTORED: f"PIN waiting in {PIN_FROM_RESTORED} to be handed out",
             PIN_NEW_RANDOM: f"new random PIN, kept in {PIN_FROM_RESTORED} to hand out"}
SKIP_REASONS = {NO_OWNER_SEVERAL_USERS: f"the file has several users and does not say whose customer it is: "
                                        f"{OWNER_HINT}",
                OWNER_NOT_IN_BACKUP: "its owner is not in the backup"}
MISSING_HINTS = {MISSING_UNOWNED: OWNER_HINT}


# --- restore ---

def describe_source(backup, path):
    """Which backup a restore starts from, with its figures."""
    counts = backup.counts()
    return f"{path} ({counts['users']} users, {counts['customers']} customers, {counts['orders']} orders)"


def confirmation_question(plan):
    """The question asked before a plan is carried out."""
    if plan.replace_state is not None:
        return (f"Replace the whole state of {plan.target} with the backup ({len(plan.users)} users and "
                f"{len(plan.customers)} customers come back)? [y/N] ")
    return f"Restore {len(plan.users)} users and {len(plan.customers)} customers into {plan.target}? [y/N] "


def describe_skipped(skipped):
    """A record the plan cannot place, and why, with the hint that places it."""
    return f"{skipped.what}: {SKIP_REASONS.get(skipped.reason, skipped.reason)}"


def describe_pin_match(match):
    """The warning for a PIN file key taken for an account whose address differs from it only in case."""
    return (f"PIN file key {match.key!r} taken for the account {match.email}: they differ only in the case of "
            "the part before the @, which the server keeps; check it is the same person")


def describe_left_out(left_out):
    """One sentence naming the customers sent without a money field the backup had as null (or not a number)."""
    if not left_out:
        return None
    fields = {}
    for item in left_out:
        fields.setdefault(customer_label(item.owner_email, item.name), []).append(item.field)
    named = ", ".join(f"{label} ({', '.join(names)})" for label, names in fields.items())
    return (f"{plural(len(fields), 'customer')} restored without a money field the backup had as null: {named}; "
            "the server's default 0 applies")


def plan_warnings(plan):
    """What a plan does that the owner should know of: PIN file keys matched up to case, money fields left out."""
    lines = [describe_pin_match(match) for match in plan.pin_matches]
    left_out = describe_left_out(plan.left_out)
    return lines + ([left_out] if left_out else [])


def restore_counts(result, seconds=None):
    """What a restore created and how long it took to everyone: 'restore: 3 users, 12 customers created, ...'."""
    if result is None:
        return "restore: nothing to create"
    seconds = result.seconds if seconds is None else seconds
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    return (f"restore: {result.users_created} users, {result.customers_created} customers created, "
            f"{len(result.failures)} failed{took}")


def first_owner_back(result):
    """When the most recently active owner was complete, masked: 'first owner (a***a@example.com) back after 0.3 s'."""
    if result is None or result.first_owner is None or result.first_owner_seconds is None:
        return None
    return f"first owner ({mask_email(result.first_owner)}) back after {result.first_owner_seconds:.1f} s"


def restore_summary(report, seconds=None):
    """The one summary line of a restore: counts, time to everyone and to the first owner complete."""
    first = first_owner_back(report.result)
    return restore_counts(report.result, seconds) + (f"; {first}" if first else "")


def describe_plan(plan):
    """The plan as lines for --dry-run: every action, never a PIN."""
    lines = []
    if plan.replace_state is not None:
        lines.append(f"replace the whole state of {plan.target} with the backup (ids, PIN hashes and timestamps "
                     "come back exactly)")
    for user in plan.users:
        lines.append(f"create user {user.email} ({PIN_WORDS.get(user.pin_source, user.pin_source)})")
    for customer in plan.customers:
        orders = len(customer.body.get("orders") or [])
        lines.append(f"create {customer_label(customer.owner_email, customer.name)} ({orders} orders)")
    if plan.existing_users or plan.existing_customers:
        lines.append(f"leave {len(plan.existing_users)} users and {len(plan.existing_customers)} customers the back "
                     "end already has as they are")
    lines += [f"skip {describe_skipped(skipped)}" for skipped in plan.skipped]
    lines += [f"warning: {line}" for line in plan_warnings(plan)]
    if plan.empty:
        lines.append("nothing to create" + ("" if plan.skipped else
                                            ": the back end already holds every user and customer of the backup"))
    return lines


def describe_missing(missing):
    """What the back end still lacks, one phrase each, with the hint that brings it back where there is one."""
    return [f"{item} ({MISSING_HINTS[item.kind]})" if getattr(item, "kind", None) in MISSING_HINTS else str(item)
            for item in missing]


def describe_report(report):
    """The outcome as lines for the restore command: what was done, PIN hand-out, verification."""
    plan, result = report.plan, report.result
    if report.aborted:
        return ["aborted: nothing was changed"]
    lines = describe_plan(plan) if report.dry_run or plan.empty else []
    if result is not None:
        lines.append(f"created {result.users_created} users and {result.customers_created} customers; "
                     f"{result.users_existing} users and {result.customers_existing} customers were already there; "
                     f"{len(result.failures)} failed")
        if result.seconds is not None:
            lines.append(restore_summary(report))
        lines += [f"failed: {failure}" for failure in result.failures]
        lines += [f"skipped {describe_skipped(skipped)}" for skipped in plan.skipped]
        lines += [f"warning: {line}" for line in plan_warnings(plan)]
        if result.pins_to_hand_out:
            lines.append(f"new PINs for {', '.join(result.pins_to_hand_out)} are in {result.pins_path}: "
                         "hand them out")
    if report.interrupted:
        created = (result.users_created, result.customers_created) if result is not None else (0, 0)
        lines.append(f"interrupted: {created[0]} of {len(plan.users)} users and {created[1]} of "
                     f"{len(plan.customers)} customers restored; {RESTORE_AGAIN_HINT}")
    elif report.dry_run:
        lines.append("dry run: nothing was changed")
    elif report.complete:
        lines.append("verified: the back end holds every user and customer of the backup")
    if report.missing and not report.dry_run:
        phrases = describe_missing(report.missing)
        shown = ", ".join(phrases[:MISSING_SHOWN]) + (", ..." if len(phrases) > MISSING_SHOWN else "")
        lines.append(f"NOT COMPLETE: the back end still lacks {shown}")
    return lines


def error_line(error):
    """The one line a command prints for an error of ours or a file it could not write."""
    return write_failed(error) if isinstance(error, OSError) else str(error)


def write_failed(error):
    """One line for a file that could not be written during a restore (a full disk, a file size limit)."""
    where = f" {error.filename}" if error.filename else ""
    return (f"could not write{where}: {error.strerror or error}; the restore stopped before creating what that "
            f"write was for; {RESTORE_AGAIN_HINT} once it can write")


# --- backup ---

def describe(outcome):
    """The one-line summary of a backup: what it did, the figures, the file, the time taken."""
    took = f" in {outcome.seconds:.2f} s" if outcome.seconds is not None else ""
    if outcome.kind == "failed":
        return f"backup failed{took}: {outcome.reason}; no file was changed"
    counts = outcome.counts
    figures = f"{counts['users']} users, {counts['customers']} customers, {counts['orders']} orders{took}"
    if outcome.kind == "good":
        return f"backup good: {figures} → {outcome.path.name} ({outcome.reason})"
    if outcome.kind == "unchanged":
        return f"backup unchanged: {figures}; {LATEST_NAME} verified ({outcome.reason})"
    return (f"backup HELD AS SUSPECT ({outcome.judgement.verdict}): {figures} → suspect/{outcome.path.name}; "
            f"{LATEST_NAME} untouched. {outcome.reason}")


def size_text(size):
    """A byte count as a person reads it: 812 B, 45.3 kB, 2.1 MB."""
    if size < 1000:
        return f"{size} B"
    if size < 1_000_000:
        return f"{size / 1000:.1f} kB"
    return f"{size / 1_000_000:.1f} MB"


def format_backup_list(entries):
    """The --list table: time, kind, users, customers, size, file, and checksum ok or BAD with the reason."""
    if not entries:
        return "no backups yet"
    rows = [("time (UTC)", "kind", "users", "customers", "size", "file", "checksum")]
    for entry in entries:
        counts = entry.counts or {}
        rows.append((entry.created_at.strftime("%Y-%m-%d %H:%M:%S"), entry.kind, str(counts.get("users", "-")),
                     str(counts.get("customers", "-")), size_text(entry.size), entry.path.name,
                     "ok" if entry.ok else f"BAD: {entry.error}"))
    # The checksum column goes last: a reason may be long and needs no padding.
    widths = [max(len(row[column]) for row in rows) for column in range(6)]
    align = (str.ljust, str.ljust, str.rjust, str.rjust, str.rjust, str.ljust)
    lines = []
    for row in rows:
        cells = [pad(cell, width) for pad, cell, width in zip(align, row, widths)]
        lines.append("  ".join(cells + [row[6]]))
    return "\n".join(lines)


# --- the verdict: what stands between the shop and PROTECTED, and what fixes it ---


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
        return f"The {program_named(facts.get('service')).title} service is not running.", START
    if kind == "no_backup":
        return "No backup has been taken yet: nothing is protected.", "python3 manual_backup.py"
    if kind == "backup_stale":
        return (f"The last good backup is {ago(facts.get('age_seconds'))} old; it should be at most "
                f"{ago(facts.get('limit_seconds'))}.", f"tail {AUTO_BACKUP.log_name}")
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
        return f"The back end's data could not be read: {facts.get('why')}.", f"tail {AUTO_RESTORE.log_name}"
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


# --- off-site copies ---

OFFSITE_CHECK_HINT = "python3 manual_backup.py --offsite-check"
AT_NEEDS_OFFSITE = "a time applies only to an off-site copy: add --from-offsite"


def offsite_not_queued(problem):
    """The note a backup's summary gets when its off-site copy could not be queued ('' when it was)."""
    return f"; off-site copy NOT queued: {problem}" if problem else ""


def describe_offsite_check(results):
    """manual_backup.py --offsite-check: one line per remote copy, newest first, and how many are good."""
    if not results:
        return "off-site: no copies in the store yet"
    lines = [f"{'good' if ok else 'BAD '}  {name}: {why}" for name, ok, why in results]
    good = sum(1 for _name, ok, _why in results if ok)
    lines.append(f"off-site: {plural(good, 'good copy', 'good copies')} of {len(results)} checked"
                 + ("" if good else ": none can be restored from"))
    return "\n".join(lines)


def describe_new_identity(path, recipient_line):
    """manual_backup.py --offsite-keygen: where the key is, the line for .env, and why it must be kept safe."""
    return "\n".join([
        f"wrote a new age identity file {path} (0600)",
        "put this line in .env (it is the public key: the watcher needs only it to upload):",
        recipient_line,
        f"and OFFSITE_IDENTITY_FILE={path} on a machine that checks or restores copies.",
        "Without this identity file nobody - not even sleepguard - can read the off-site copies:",
        "keep a copy of it in the owner's password manager too."])


# --- alerts: what the owner reads on the phone (alerts.py masks e-mails and secrets on the way in) ---

# What an OSError says in a failed backup when the watcher's own disk is the trouble (ENOSPC, EROFS, EDQUOT).
DISK_TROUBLE = ("No space left on device", "Read-only file system", "Disk quota exceeded")
VERDICT_WORSE = "Worse now: the shop's data is {new} (it was {old})."
VERDICT_BETTER = "Better now: the shop's data is {new} (it was {old})."


def alert_line(reason):
    """A verdict reason as one alert line: what is wrong, then its fix; a full or read-only disk named as such."""
    text, fix = _reason_words(reason.kind, reason.facts)
    why = str(reason.facts.get("why") or "")
    if reason.kind == "backup_failing" and any(trouble in why for trouble in DISK_TROUBLE):
        text = f"Disk trouble on the watcher: backups cannot be written ({why})."
        fix = "free some space on the watcher's disk, or choose a DATA_DIR on a writable disk"
    return f"{text} Fix: {fix}" if fix else text


def verdict_change_line(new_word, old_word, better):
    """One line for the verdict getting better or worse, once the new one has held."""
    return (VERDICT_BETTER if better else VERDICT_WORSE).format(new=new_word, old=old_word)


def restored_line(users_created, customers_created, needing_pin):
    """A wipe detected and put right: how much came back, and who needs a new PIN (never the PIN)."""
    line = (f"The back end was wiped and sleepguard restored it: {plural(users_created, 'user')} and "
            f"{plural(customers_created, 'customer')} are back.")
    if needing_pin:
        text, fix = _reason_words("pins_to_hand_out", {"users": list(needing_pin)})
        line += f" {text} Then: {fix}"
    return line


NO_ALERT_URLS = "no alert URL is set: put ALERT_URLS=... (or ALERT_CONFIG=file) in .env, then try again"


def test_alert_lines(results):
    """What --test-alert prints: a line per URL (service and fingerprint), delivered or why not."""
    return [f"{result.label}: delivered" if result.delivered else f"{result.label}: NOT delivered: {result.reason}"
            for result in results]
