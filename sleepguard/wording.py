"""Every sentence a person reads about a restore plan, a restore report, a backup, the backups kept and the verdict.

The commands print these, the status screen and the alerts show them; this is also the one module
of the library that names command-line flags, in the hints that say which command fixes what.
"""

import shlex
import textwrap
from datetime import datetime, timezone

from .masking import mask_email
from .pins import RESTORED_PINS_NAME
from .plan import (MISSING_UNOWNED, NO_OWNER_SEVERAL_USERS, OWNER_NOT_IN_BACKUP, PIN_FROM_BACKUP, PIN_FROM_PINS_FILE,
                   PIN_FROM_RESTORED, PIN_NEW_RANDOM, customer_label)
from .services import AUTO_BACKUP, AUTO_RESTORE, program_named
from .snapshot import parse_utc_time
from .store import LATEST_NAME

MISSING_SHOWN = 10
NAMES_SHOWN = 3
START = "python3 start_all_super_services.py"

# --- hints: which command, with which flag, fixes what ---
OWNER_HINT = "use --owner EMAIL"
ACCEPT_SHRINK_HINT = "python3 manual_backup.py --accept-shrink"
ACCEPT_CURRENT_HINT = "python3 manual_backup.py --accept-current"
RESTORE_INTO_HINT = "python3 restore_simple.py"
PINS_HANDED_OUT_HINT = "python3 restore_simple.py --pins-handed-out [EMAIL ...]"
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


def handed_out(emails):
    """What --pins-handed-out did: whose new PINs were forgotten."""
    if not emails:
        return f"no new PIN was waiting in {RESTORED_PINS_NAME}: nothing to forget"
    return f"forgot the new PINs of {plural(len(emails), 'user')}: {', '.join(emails)}"


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


def _checksum_word(entry):
    """ok, legacy (no checksum) for a file of the earlier scripts, or BAD with the reason."""
    if not entry.ok:
        return f"BAD: {entry.error}"
    return "legacy (no checksum)" if entry.legacy else "ok"


def format_backup_list(entries):
    """The --list table: time, kind, users, customers, size, file, and checksum ok or BAD with the reason."""
    if not entries:
        return "no backups yet"
    rows = [("time (UTC)", "kind", "users", "customers", "size", "file", "checksum")]
    for entry in entries:
        counts = entry.counts or {}
        rows.append((entry.created_at.strftime("%Y-%m-%d %H:%M:%S"), entry.kind, str(counts.get("users", "-")),
                     str(counts.get("customers", "-")), size_text(entry.size), entry.path.name,
                     _checksum_word(entry)))
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


def not_complete_note(failures, missing, shown):
    """Why a restore is not complete: the cause first (an alert is cut to a phone's line), then what is missing."""
    more = f" (and {plural(len(failures) - 1, 'more failure')})" if len(failures) > 1 else ""
    cause = f": {failures[0]}{more}" if failures else ""
    return f"NOT complete{cause}; still missing {some(missing, shown)}"


def _pins_file(facts):
    """The restored-PINs file a reason names, whole (the demo's is in its own folder), ready to paste."""
    return shlex.quote(str(facts.get("file") or RESTORED_PINS_NAME))


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
        last = "The last backup" if count == 1 else f"The last {count} backups"
        return (f"{last} failed: {facts.get('why') or 'see the log'}.",
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
                f"{ACCEPT_CURRENT_HINT} keeps it; {RESTORE_INTO_HINT} restores into it")
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
                f"{ACCEPT_SHRINK_HINT} (only if it was deleted on purpose)")
    if kind == "pins_to_hand_out":
        users = facts.get("users") or []
        return (f"{plural(len(users), 'user')} need{'s' if len(users) == 1 else ''} the new PIN the restore gave "
                f"them: {some(users)}.",
                f"cat {_pins_file(facts)}; hand them out; {PINS_HANDED_OUT_HINT}")
    if kind == "pins_unreadable":
        return f"The restored PINs cannot be read: {facts.get('why')}.", f"chmod 600 {_pins_file(facts)}"
    if kind == "pins_file_refused":
        users = facts.get("users") or 0
        given = f"{plural(users, 'restored user')} got a new random PIN instead" if users else \
            "restored users get new random PINs instead"
        loose = "mode" in str(facts.get("why")) and facts.get("file")
        return (f"The PIN file was not used, so {given}: {facts.get('why')}.",
                f"chmod 600 {facts['file']}" if loose else "put the PIN file right (see above)")
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
    kind, facts = (reason["kind"], reason) if isinstance(reason, dict) else (reason.kind, reason.facts)
    text, fix = _reason_words(kind, facts)
    return [shorten(text)] + ([shorten(f"fix: {fix}")] if fix else [])


def reason_sentence(reason):
    """A verdict reason whole, with its fix, as one sentence for --json's warnings."""
    text, fix = _reason_words(reason.kind, reason.facts)
    return f"{text} fix: {fix}" if fix else text


# --- the status screen: the verdict and its reasons first, in the owner's words; the details after ---

WIDTH = 99  # every line under 100 characters
LABEL = 13  # the width of the details' labels


def shorten(text, width=WIDTH):
    """One line of at most width characters: a long reason or summary is cut with an ellipsis."""
    text = " ".join(str(text).splitlines())
    return text if len(text) <= width else text[:width - 1].rstrip() + "…"


def _wrapped(text, indent="", later=None):
    """text as lines under WIDTH, the first indented by indent and the rest by later (default: the same)."""
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent if later is None else later,
                         break_on_hyphens=False, break_long_words=True) or [indent.rstrip()]


def local_time(moment, now=None):
    """A time in the machine's local zone, with the zone: '13:58 CET' today, '2026-12-01 13:58 (+01:00)' before."""
    moment = parse_utc_time(moment) if isinstance(moment, str) else moment
    if moment is None:
        return "never"
    local, today = moment.astimezone(), (now or datetime.now(timezone.utc)).astimezone().date()
    if local.date() == today:
        return f"{local:%H:%M} {local:%Z}"
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} ({offset[:3]}:{offset[3:]})"


def _when(text, now):
    """A recorded time as '13:58 CET (42 s ago)'."""
    moment = parse_utc_time(text)
    if moment is None:
        return "never"
    return f"{local_time(moment, now)} ({ago((now - moment).total_seconds())} ago)"


def counts_text(counts):
    """'2 users, 5 customers, 1 order': the figures of a backup, singular and plural right."""
    counts = counts or {}
    return ", ".join(plural(counts[key], word) if isinstance(counts.get(key), int) else f"? {word}s"
                     for key, word in (("users", "user"), ("customers", "customer"), ("orders", "order")))


def _backend_details(backend, now):
    if not backend["configured"]:
        return ["back end     not set (BACKEND_URL is empty)"]
    where = backend["url"] + {"demo": " (demo)", "services": " (watched by the services)"}.get(backend["source"], "")
    if backend["reachable"]:
        answer = f"reachable, {backend['health']}, {backend['latency_seconds'] * 1000:.0f} ms"
    else:
        answer = f"NOT reachable: {backend['error']}"
    lines = _wrapped(f"{where}  {answer}", "back end".ljust(LABEL), " " * LABEL)
    if backend.get("settings_url"):
        lines += _wrapped(f"the services watch this one; BACKEND_URL in the settings is {backend['settings_url']}",
                          " " * LABEL)
    if backend["last_restart_seen"]:
        lines.append(f"{'':{LABEL}}last restart seen {_when(backend['last_restart_seen'], now)}")
    return lines


def _service_details(services, now):
    lines = ["services"]
    width = max(len(program_named(service["service"]).title) for service in services)
    for service in services:
        title = program_named(service["service"]).title.ljust(width)
        if service["state"] == "running":
            state = f"running for {ago(service['uptime_seconds'])} (PID {service['pid']})"
        elif service["state"] == "stale":
            state = f"NOT running: STALE PID file: {service['reason']}"
        else:
            state = "NOT running"
        lines.append(shorten(f"  {title}  {state}"))
        if service["last_run_at"]:
            lines.append(shorten(f"  {'':{width}}  last run {_when(service['last_run_at'], now)}: "
                                 f"{service['last_outcome']}, {service['last_summary']}"))
    return lines


def _backup_details(status, now):
    backup, history = status["last_good_backup"], status["history"]
    if backup is None:
        lines = ["last backup  no backup yet"]
    else:
        check = "legacy (no checksum)" if backup.get("legacy") else "checksum ok"
        lines = _wrapped(f"{backup['file']}: {counts_text(backup['counts'])}, {check}", "last backup".ljust(LABEL),
                         " " * LABEL)
        lines.append(f"{'':{LABEL}}taken {_when(backup['created_at'], now)}, "
                     f"verified {_when(backup['verified_at'], now)}")
    held = f"; {plural(history['suspect_files'], 'suspect read')} kept aside" if history["suspect_files"] else ""
    lines += _wrapped(f"{plural(history['files'], 'file')}, {size_text(history['bytes'])} in {history['folder']}"
                      f"{held}", "history".ljust(LABEL), " " * LABEL)
    running = status.get("restore") or {}
    if running.get("running"):
        lines.append("restoring".ljust(LABEL) + f"{running['users_done']} of {plural(running['users_total'], 'user')}"
                     f" (PID {running['pid']})")
    restore = status["last_restore"]
    if restore["at"] or restore["what"]:
        lines += _wrapped(f"{_when(restore['at'], now)}: {restore['what']}", "last restore".ljust(LABEL),
                          " " * LABEL)
    else:
        lines.append("last restore".ljust(LABEL) + "none recorded")
    if status["pins_to_hand_out"]:
        lines += _wrapped(f"{', '.join(status['pins_to_hand_out'])} (in {status['pins_path']}, readable by you only)",
                          "new PINs for".ljust(LABEL), " " * LABEL)
    if status.get("offsite"):
        offsite = status["offsite"]
        lines += _wrapped(f"{offsite['text']} (recipient {offsite['recipient_fingerprint']})", "", " " * LABEL)
    return lines


def _fix_lines(fix):
    """A fix under its reason; one too long for a line is broken at its '; ', so no command is cut in two."""
    whole = f"    fix: {fix}"
    if len(whole) <= WIDTH:
        return [whole]
    parts = fix.split("; ")
    return [line for number, part in enumerate(parts)
            for line in _wrapped(part + (";" if number < len(parts) - 1 else ""),
                                 "    fix: " if number == 0 else " " * 9, " " * 9)]


def status_screen(status):
    """The status as one screen: the verdict and when, each reason with its fix, then the details."""
    now = parse_utc_time(status["checked_at"]) or datetime.now(timezone.utc)
    verdict = status["verdict"]
    lines = [f"{verdict['verdict']} (checked {local_time(now, now)})"]
    for reason in verdict["reasons"]:
        # Whole, wrapped: on the screen a long reason is read to its end (alerts take reason_lines' short form).
        text, fix = _reason_words(reason["kind"], reason)
        lines += _wrapped(text, "  ! ", "    ")
        lines += _fix_lines(fix) if fix else []
    if not verdict["reasons"]:
        lines.append("  the services run, the backup is fresh and the back end holds its data")
    lines += ["", "details"]
    lines += _backend_details(status["backend"], now)
    lines += _service_details(status["services"], now)
    lines += _backup_details(status, now)
    lines.append(shorten(f"data folder  {status['data_dir']}"))
    return "\n".join(lines)



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

# What an OSError says in a failed backup when the watcher's own disk is the trouble (ENOSPC, EROFS, EDQUOT, and
# EFBIG: a file size limit on the watcher).
DISK_TROUBLE = ("No space left on device", "Read-only file system", "Disk quota exceeded", "File too large")
ALERT_REASON_CHARS = 240  # alerts.MAX_LINE_CHARS leaves room for the fix after it
VERDICT_WORSE = "Worse now: the shop's data is {new} (it was {old})."
VERDICT_BETTER = "Better now: the shop's data is {new} (it was {old})."


def alert_line(reason):
    """A verdict reason as one alert line: what is wrong, then its fix; a full or read-only disk named as such."""
    text, fix = _reason_words(reason.kind, reason.facts)
    why = str(reason.facts.get("why") or "")
    if reason.kind == "backup_failing" and any(trouble in why for trouble in DISK_TROUBLE):
        text = f"Disk trouble on the watcher: backups cannot be written ({why})."
        fix = "free some space on the watcher's disk (or lift its file size limit), or choose a writable DATA_DIR"
    # A long reason is cut, never its fix: the owner reading it on the phone must see what to run.
    return f"{shorten(text, ALERT_REASON_CHARS)} Fix: {fix}" if fix else shorten(text, ALERT_REASON_CHARS)


def verdict_change_line(new_word, old_word, better):
    """One line for the verdict getting better or worse, once the new one has held."""
    return (VERDICT_BETTER if better else VERDICT_WORSE).format(new=new_word, old=old_word)


def restored_line(users_created, customers_created, needing_pin, pins_file):
    """A wipe detected and put right: how much came back, and who needs a new PIN in which file (never the PIN)."""
    line = (f"The back end was wiped and sleepguard restored it: {plural(users_created, 'user')} and "
            f"{plural(customers_created, 'customer')} are back.")
    if needing_pin:
        text, fix = _reason_words("pins_to_hand_out", {"users": list(needing_pin), "file": pins_file})
        line += f" {text} Then: {fix}"
    return line


NO_ALERT_URLS = "no alert URL is set: put ALERT_URLS=... (or ALERT_CONFIG=file) in .env, then try again"


def test_alert_lines(results):
    """What --test-alert prints: a line per URL (service and fingerprint), delivered or why not."""
    return [f"{result.label}: delivered" if result.delivered else f"{result.label}: NOT delivered: {result.reason}"
            for result in results]
