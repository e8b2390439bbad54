"""One backup now: read the back end, let the store judge and keep the read, and say what happened in one line."""

import time

from .exceptions import BackendError
from .store import LATEST_NAME, BackupOutcome, BackupStore


def take_backup(settings, client, accept_shrink=False):
    """Read the whole back end over client and record it; an unusable answer is a "failed" outcome that touched no file.

    It returns the outcome and logs nothing of it: the caller says it once (describe(outcome)).
    """
    started = time.monotonic()
    try:
        snapshot = client.read_snapshot()
    except BackendError as exc:
        outcome = BackupOutcome("failed", str(exc))
    else:
        try:
            outcome = BackupStore(settings).record(snapshot, accept_shrink=accept_shrink)
        except OSError as exc:
            # A full or read-only disk: every write is atomic, so the last good backup is as it was.
            outcome = BackupOutcome("failed", f"could not write to {settings.data_dir}: {exc.strerror or exc}")
    outcome.seconds = time.monotonic() - started
    return outcome


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
