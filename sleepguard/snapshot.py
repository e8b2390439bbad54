"""The backup document: users with their own customers nested under them, plus a checksum.

The BABS10 API never says who owns a customer, so the backup records it by nesting. A
document looks like:
    {"format": "sleepguard-backup", "format_version": 1, "created_at": "...Z",
     "backend_url": ..., "mode": "babs10"|"snapshot", "duration_seconds": ...,
     "counts": {"users", "customers", "orders"}, "sha256": <hex of canonical content>,
     "content": {"users": [{...user, "customers": [{...customer}]}], "extra": {...}}}
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .emails import stored_form
from .exceptions import BackupFileError

FORMAT = "sleepguard-backup"
FORMAT_VERSION = 1
# The server's own clock: every user and customer carries these (ISO-8601, no zone, UTC).
SERVER_TIME_FIELDS = ("created_at", "updated_at")


def utc_now_iso():
    """The current UTC time as ISO-8601 with a Z, the one form every file of ours uses."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_utc_time(text):
    """An ISO-8601 time as aware UTC; None when missing or not a time (a zone-less time is UTC)."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def server_time(record):
    """The newest of a record's server timestamps (created or updated), as aware UTC; None when it has none."""
    return max(filter(None, (parse_utc_time(record.get(name)) for name in SERVER_TIME_FIELDS)), default=None)


def canonical_json(value):
    """One byte form per content, so equal content always has an equal checksum."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _sorted_customers(customers):
    return sorted(customers, key=lambda c: (str(c.get("name", "")), str(c.get("id", ""))))


def _nest(users, customers_by_user_id, key=lambda user: user.get("id")):
    """Each user with its own customers under it; key says how a user is found in the map (by id by default)."""
    nested = []
    for user in sorted(users, key=lambda u: (str(u.get("email", "")), str(u.get("id", "")))):
        own = customers_by_user_id.get(key(user), [])
        nested.append({**user, "customers": _sorted_customers(own)})
    return nested


@dataclass
class Snapshot:
    """One read of the back end's data, owners recorded, ready to store, compare or restore."""

    users: list
    extra: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    unowned_customers: list = field(default_factory=list)

    def content(self):
        return {"users": self.users, "extra": self.extra}

    def checksum(self):
        return hashlib.sha256(canonical_json(self.content())).hexdigest()

    def counts(self):
        customers = [c for u in self.users for c in u["customers"]] + self.unowned_customers
        orders = sum(len(c.get("orders") or []) for c in customers)
        return {"users": len(self.users), "customers": len(customers), "orders": orders}

    def customers_by_email(self):
        """Map owner e-mail → that owner's customers."""
        return {u["email"]: u["customers"] for u in self.users}

    def customer_keys(self):
        """The (owner e-mail, customer name) pairs that identify customers across id changes."""
        return {(u["email"], c["name"]) for u in self.users for c in u["customers"]}

    def record_ids(self):
        """Ids of every user and customer: a record keeps its id only while the back end keeps it."""
        return {u.get("id") for u in self.users} | {c.get("id") for u in self.users for c in u["customers"]}

    def records(self):
        """Every user and customer of the read, customers without an owner included."""
        customers = [c for u in self.users for c in u["customers"]] + self.unowned_customers
        return [{k: v for k, v in u.items() if k != "customers"} for u in self.users] + customers

    def watermark(self):
        """The newest server timestamp of the read: every record it holds existed by then. None without any."""
        return max(filter(None, map(server_time, self.records())), default=None)

    def to_document(self):
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **self.meta,
                "counts": self.counts(), "sha256": self.checksum(), "content": self.content()}

    def to_admin_state(self):
        """The flat state document of snapshot mode (users, customers with user_id, extras)."""
        extra = dict(self.extra)
        orphans = extra.pop("orphan_customers", [])
        users = [{k: v for k, v in u.items() if k != "customers"} for u in self.users]
        customers = [{**c, "user_id": c.get("user_id", u.get("id"))} for u in self.users for c in u["customers"]]
        return {**extra, "users": users, "customers": customers + orphans}

    @classmethod
    def from_api(cls, users, customers_by_user_id, meta):
        """Build from the public API's users and each user's customer list."""
        return cls(users=_nest(users, customers_by_user_id), meta=meta)

    @classmethod
    def from_admin_state(cls, state, meta):
        """Build from a snapshot-mode state document: customers carry user_id there."""
        by_user = {}
        for customer in state["customers"]:
            by_user.setdefault(customer["user_id"], []).append(customer)
        known = {u["id"] for u in state["users"]}
        orphans = [c for uid, cs in by_user.items() if uid not in known for c in cs]
        extra = {k: v for k, v in state.items() if k not in ("users", "customers")}
        if orphans:
            extra["orphan_customers"] = orphans
        return cls(users=_nest(state["users"], by_user), extra=extra, meta=meta)

    @classmethod
    def from_document(cls, doc):
        """Read one of our backup documents, checking its form and checksum."""
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise BackupFileError("not a sleepguard backup")
        if doc.get("format_version") != FORMAT_VERSION:
            raise BackupFileError(f"backup format version {doc.get('format_version')!r} is not one this sleepguard reads")
        content = doc.get("content")
        if not isinstance(content, dict) or not _valid_users(content.get("users")) \
                or not isinstance(content.get("extra", {}), dict):
            raise BackupFileError("backup content has the wrong shape")
        meta = {k: v for k, v in doc.items() if k not in ("format", "format_version", "counts", "sha256", "content")}
        snapshot = cls(users=content["users"], extra=content.get("extra", {}), meta=meta)
        if doc.get("sha256") != snapshot.checksum():
            raise BackupFileError("checksum mismatch: the file was changed or damaged")
        return snapshot

    @classmethod
    def from_legacy(cls, doc, owner_email=None):
        """Read a file of the earlier scripts: flat customers without owners, attributed where possible."""
        users, customers = doc.get("users"), doc.get("customers")
        if not isinstance(users, list) or not isinstance(customers, list) \
                or not all(isinstance(u, dict) and isinstance(u.get("email"), str) for u in users) \
                or not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in customers):
            raise BackupFileError("legacy backup has the wrong shape: needs lists 'users' and 'customers'")
        # The owner's address is compared as the server stores it, however it was typed.
        emails = {stored_form(u["email"]): u["email"] for u in users}
        if owner_email is not None and stored_form(owner_email) not in emails:
            raise BackupFileError(f"the owner named, {owner_email}, is not one of the file's users")
        ids = {u.get("id"): u["email"] for u in users if u.get("id")}
        named = emails[stored_form(owner_email)] if owner_email is not None else None
        sole_owner = named or (users[0]["email"] if len(users) == 1 else None)
        by_email, unowned = {}, []
        for customer in customers:
            owner = ids.get(customer.get("user_id")) or sole_owner
            if owner:
                by_email.setdefault(owner, []).append(customer)
            else:
                unowned.append(customer)
        # By e-mail: a hand-made file's user may have no id, and its customers must stay with it all the same.
        nested = _nest(users, by_email, key=lambda user: user["email"])
        # What the file had, so a restore can never call itself verified with any of them missing.
        meta = {"created_at": doc.get("backup_created"), "mode": "legacy", "legacy_type": doc.get("backup_type"),
                "file_customers": len(customers)}
        return cls(users=nested, meta=meta, unowned_customers=unowned)


def _valid_users(users):
    return isinstance(users, list) and all(
        isinstance(u, dict) and isinstance(u.get("email"), str) and isinstance(u.get("customers"), list)
        and all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in u["customers"])
        for u in users)


def parse_backup(data, owner_email=None):
    """Parse a backup file's bytes: ours (verified) or a legacy one; raise BackupFileError with the reason."""
    if not data.strip():
        raise BackupFileError("file is empty")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupFileError(f"not valid JSON (truncated or damaged?): {exc}") from None
    if isinstance(doc, dict) and doc.get("format") == FORMAT:
        return Snapshot.from_document(doc)
    if isinstance(doc, dict) and "users" in doc and "customers" in doc:
        return Snapshot.from_legacy(doc, owner_email=owner_email)
    raise BackupFileError("JSON of the wrong shape: neither a sleepguard backup nor a legacy backup")
