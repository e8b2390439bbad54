"""What a restore would do, decided from a backup and one read of the back end: pure, no I/O, no wording.

API mode merges: it creates only what the back end lacks (users matched by e-mail, customers by
owner e-mail and name), each customer under its own owner, each PIN from the owner's PIN file or
new and random, never a shared one. Snapshot mode puts the whole state back, and only when that
overwrites nothing newer. verify_restore says what of a backup a read still lacks. The sentences
a person reads about a plan live in wording.py.
"""

import math
from collections import Counter
from dataclasses import dataclass, field

from .emails import stored_form
from .exceptions import RestoreError
from .snapshot import server_time

PIN_FROM_PINS_FILE = "pins file"
PIN_FROM_BACKUP = "backup file"
PIN_FROM_RESTORED = "restored_pins.json"
PIN_NEW_RANDOM = "new random"
PIN_FROM_HASH = "the backup's PIN hash"
# PINs that live in restored_pins.json: the owner must hand them out.
PINS_TO_HAND_OUT = (PIN_FROM_RESTORED, PIN_NEW_RANDOM)
CUSTOMER_FIELDS = ("name", "money_given", "total_spent", "orders")
# Sent as null (or a number the server reads back as null), these store the customer, answer 500 and hide
# every customer of that owner from then on: left out instead, so the server's default (0) applies.
MONEY_FIELDS = ("money_given", "total_spent")

# Why a customer of the backup cannot be placed: codes the wording turns into sentences and hints.
NO_OWNER_SEVERAL_USERS = "no owner: several users"
OWNER_NOT_IN_BACKUP = "owner not in the backup"

# Kinds of Missing.
MISSING_USER = "user"
MISSING_CUSTOMER = "customer"
MISSING_UNOWNED = "unowned customers"
MISSING_ORPHANS = "orphan customers"
MISSING_UNPLACED = "customers of the file not placed"


@dataclass(frozen=True)
class UserToCreate:
    """A user the back end lacks, and where its PIN comes from (the PIN itself is never shown)."""

    email: str
    pin_source: str
    pin: str | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class CustomerToCreate:
    """A customer the back end lacks, under the owner it belongs to."""

    owner_email: str
    name: str
    body: dict = field(repr=False, compare=False)


@dataclass(frozen=True)
class Skipped:
    """A record of the backup the plan cannot place, and a reason code (NO_OWNER_SEVERAL_USERS, ...)."""

    what: str
    reason: str


@dataclass(frozen=True)
class LeftOut:
    """A money field of a customer that is not sent: null or not a finite number in the backup."""

    owner_email: str
    name: str
    field: str


@dataclass(frozen=True)
class PinMatch:
    """A PIN file key that names an account only up to the case of its local part, taken as that account's."""

    key: str
    email: str


@dataclass
class RestorePlan:
    """The exact actions a restore takes; holding no PIN in its printable form."""

    target: str
    users: list = field(default_factory=list)
    customers: list = field(default_factory=list)
    existing_users: list = field(default_factory=list)
    existing_customers: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # Skipped
    left_out: list = field(default_factory=list)  # LeftOut: money fields not sent
    pin_matches: list = field(default_factory=list)  # PinMatch: PIN file keys taken for an account of other case
    owner_order: list = field(default_factory=list)  # owners' e-mails, most recently active first
    owner_ids: dict = field(default_factory=dict, repr=False)  # e-mail -> id of users the back end has
    replace_state: dict | None = field(default=None, repr=False)  # snapshot mode: the document to PUT

    @property
    def empty(self):
        return not self.users and not self.customers and self.replace_state is None


class Missing(str):
    """One thing of the backup the back end lacks: reads as its label (so a log line can join them), has a kind."""

    def __new__(cls, label, kind):
        item = super().__new__(cls, label)
        item.kind = kind
        return item


def customer_label(owner_email, name):
    """How a customer is named wherever one is listed: by name and owner."""
    return f"customer {name!r} of {owner_email}"


def _pin_from_backup(backup, user):
    # Only a legacy hand-made file carries a plain PIN; our own backups hold hashes at most.
    pin = user.get("pin")
    if backup.meta.get("mode") == "legacy" and isinstance(pin, str) and pin:
        return pin
    return None


def _pin_key_for(email, pins, taken):
    """The PIN file key for an account: its stored form, or the one key equal to it but for case (else None)."""
    if email in pins:
        return email
    alike = [key for key in pins if key.lower() == email.lower() and key not in taken]
    return alike[0] if len(alike) == 1 else None


def _choose_pin(backup, user, email, pins, restored_pins, plan, accounts):
    # Keys that are another account's own address (accounts: every one the back end or the backup has) are never
    # lent to this one.
    key = _pin_key_for(email, pins, accounts - {email})
    if key is not None:
        if key != email:
            plan.pin_matches.append(PinMatch(key, email))
        return PIN_FROM_PINS_FILE, pins[key]
    from_backup = _pin_from_backup(backup, user)
    if from_backup:
        return PIN_FROM_BACKUP, from_backup
    if email in restored_pins:
        return PIN_FROM_RESTORED, restored_pins[email]
    return PIN_NEW_RANDOM, None


def _customer_body(email, customer, plan):
    """What is POSTed for a customer: never a null or non-finite money field; orders null is sent as []."""
    body = {"name": customer["name"]}
    for name in MONEY_FIELDS:
        if name not in customer:
            continue
        value = customer[name]
        if isinstance(value, (int, float)) and math.isfinite(value):
            body[name] = value
        else:
            plan.left_out.append(LeftOut(email, customer["name"], name))
    if "orders" in customer:
        body["orders"] = [] if customer["orders"] is None else customer["orders"]
    return body


def _created_order(customer):
    """A customer's place in its owner's list: the server lists by creation, so re-create in that order."""
    created = server_time({"created_at": customer.get("created_at")})
    return (created is None, created.isoformat() if created else "", customer.get("name", ""))


def activity_order(backup, emails):
    """Owners' e-mails, most recently active first: who saved last (the triggers), then the newest customer change."""
    triggers = [stored_form(user) for user in backup.meta.get("recent_trigger_users") or [] if isinstance(user, str)]
    newest = {}
    for user in backup.users:
        times = [server_time(record) for record in (user, *user["customers"])]
        newest[stored_form(user["email"])] = max(filter(None, times), default=None)

    def rank(email):
        saved = triggers.index(email) if email in triggers else len(triggers)
        changed = newest.get(email)
        return saved, changed is None, -(changed.timestamp() if changed else 0), email
    return sorted(emails, key=rank)


def _unattributed(backup):
    """Customers the backup cannot give an owner, each with its reason code."""
    skipped = [Skipped(f"customer {c.get('name')!r}", NO_OWNER_SEVERAL_USERS) for c in backup.unowned_customers]
    skipped += [Skipped(f"customer {c.get('name')!r}", OWNER_NOT_IN_BACKUP)
                for c in backup.extra.get("orphan_customers", [])]
    return skipped


def plan_restore(backup, current, pins, restored_pins=None, target=""):
    """Plan an API-mode merge: create what the back end lacks, leave what it has (it is newer).

    E-mails are compared in the server's stored form. Owners come most recently active first, each
    owner's customers right after it in their original order, so whoever worked last is back first.
    """
    restored_pins = {stored_form(email): pin for email, pin in (restored_pins or {}).items()}
    plan = RestorePlan(target=target, skipped=_unattributed(backup))
    current_users = {stored_form(u["email"]): u for u in current.users}
    current_customers = {(stored_form(email), name) for email, name in current.customer_keys()}
    plan.owner_ids = {email: user["id"] for email, user in current_users.items()}
    # An address the server would refuse stays as it is: its POST fails on its own, reported, and the rest goes on.
    by_email = {stored_form(user["email"]): user for user in backup.users}
    plan.owner_order = activity_order(backup, list(by_email))
    # Worked out once: an e-mail's stored form is a full validation, and per user it made planning quadratic.
    accounts = set(plan.owner_ids) | set(by_email)
    for email in plan.owner_order:
        user = by_email[email]
        if email in current_users:
            plan.existing_users.append(email)
        else:
            source, pin = _choose_pin(backup, user, email, pins, restored_pins, plan, accounts)
            plan.users.append(UserToCreate(email, source, pin))
        for customer in sorted(user["customers"], key=_created_order):
            key = (email, customer["name"])
            if key in current_customers:
                plan.existing_customers.append(key)
            else:
                plan.customers.append(CustomerToCreate(email, customer["name"], _customer_body(email, customer, plan)))
    return plan


def _state_records(snapshot):
    users = {u["id"]: {k: v for k, v in u.items() if k != "customers"} for u in snapshot.users}
    customers = {c["id"]: c for u in snapshot.users for c in u["customers"]}
    customers.update({c["id"]: c for c in snapshot.extra.get("orphan_customers", [])})
    return users, customers


def plan_snapshot_restore(backup, current, target=""):
    """Plan a snapshot-mode restore: put the whole state back, but never over data the backup lacks."""
    if backup.meta.get("mode") != "snapshot":
        raise RestoreError(f"this backup was made in {backup.meta.get('mode')!r} mode and holds no PIN hashes: "
                           "restore it with BACKEND_MODE=babs10, which merges through the API")
    backup_users, backup_customers = _state_records(backup)
    current_users, current_customers = _state_records(current)
    owner_of = {u["id"]: u["email"] for u in backup.users + current.users}
    newer = [f"user {u['email']}" for uid, u in current_users.items() if backup_users.get(uid) != u]
    newer += [customer_label(owner_of.get(c.get("user_id"), "an unknown owner"), c["name"])
              for cid, c in current_customers.items() if backup_customers.get(cid) != c]
    if newer:
        raise RestoreError(f"the back end holds newer data than the backup ({len(newer)} records, e.g. "
                           f"{', '.join(newer[:3])}): refusing to replace its whole state; "
                           "restore with BACKEND_MODE=babs10 to merge through the API instead")
    plan = RestorePlan(target=target)
    plan.existing_users = [u["email"] for uid, u in backup_users.items() if uid in current_users]
    plan.existing_customers = [cid for cid in backup_customers if cid in current_customers]
    plan.users = [UserToCreate(u["email"], PIN_FROM_HASH) for uid, u in backup_users.items()
                  if uid not in current_users]
    plan.customers = [CustomerToCreate(owner_of.get(c.get("user_id"), "an unknown owner"), c["name"], c)
                      for cid, c in backup_customers.items() if cid not in current_customers]
    if plan.users or plan.customers:
        plan.replace_state = backup.to_admin_state()
    return plan


def _customer_counter(snapshot):
    """How many customers of each (stored owner e-mail, name) a snapshot holds."""
    return Counter((stored_form(u["email"]), c["name"]) for u in snapshot.users for c in u["customers"])


def verify_restore(backup, current):
    """What of the backup the read still lacks: users by e-mail, customers by (owner e-mail, name)."""
    have_users = {stored_form(u["email"]) for u in current.users}
    missing = [Missing(f"user {u['email']}", MISSING_USER) for u in backup.users
               if stored_form(u["email"]) not in have_users]
    # Counted, not only matched: two customers of one name under one owner are two the back end must hold.
    lacking = sorted((_customer_counter(backup) - _customer_counter(current)).elements())
    missing += [Missing(customer_label(email, name), MISSING_CUSTOMER) for email, name in lacking]
    placed = sum(len(u["customers"]) for u in backup.users) + len(backup.unowned_customers)
    unplaced = backup.meta.get("file_customers", placed) - placed
    if unplaced > 0:
        missing.append(Missing(f"{unplaced} customers of the file that have no place in the backup", MISSING_UNPLACED))
    have_orphans = {c.get("id") for c in current.extra.get("orphan_customers", [])}
    lost_orphans = [c for c in backup.extra.get("orphan_customers", []) if c.get("id") not in have_orphans]
    if backup.unowned_customers:
        missing.append(Missing(f"{len(backup.unowned_customers)} customers the file gives no owner", MISSING_UNOWNED))
    if lost_orphans:
        missing.append(Missing(f"{len(lost_orphans)} customers whose owner is not in the backup", MISSING_ORPHANS))
    return missing
