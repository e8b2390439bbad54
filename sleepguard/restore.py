"""Restore: compare a backup with the back end, plan exact actions, apply them as an idempotent merge, verify.

API mode merges through the public API: it creates only what the back end lacks (users
matched by e-mail, customers by owner e-mail and name), each customer under its own owner,
each PIN from the owner's PIN file or new and random, never a shared one. Snapshot mode puts
the whole state back in one request, and only when that overwrites nothing newer.
"""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .client import BackendClient
from .exceptions import BackendError, BackendRejected, BackupFileError, RestoreError
from .pins import load_pins_file, new_random_pin, read_restored_pins, record_restored_pins, restored_pins_path
from .snapshot import parse_backup
from .store import BackupStore, read_backup_bytes

log = logging.getLogger(__name__)

PIN_FROM_PINS_FILE = "pins file"
PIN_FROM_BACKUP = "backup file"
PIN_FROM_RESTORED = "restored_pins.json"
PIN_NEW_RANDOM = "new random"
# PINs that live in restored_pins.json: the owner must hand them out.
PINS_TO_HAND_OUT = (PIN_FROM_RESTORED, PIN_NEW_RANDOM)
PIN_WORDS = {PIN_FROM_PINS_FILE: "PIN from the PIN file", PIN_FROM_BACKUP: "PIN from the backup file",
             PIN_FROM_RESTORED: f"PIN waiting in {PIN_FROM_RESTORED} to be handed out",
             PIN_NEW_RANDOM: f"new random PIN, kept in {PIN_FROM_RESTORED} to hand out"}
CUSTOMER_FIELDS = ("name", "money_given", "total_spent", "orders")
MISSING_SHOWN = 10


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


@dataclass
class RestorePlan:
    """The exact actions a restore takes; printable, holding no PIN in its printable form."""

    target: str
    users: list = field(default_factory=list)
    customers: list = field(default_factory=list)
    existing_users: list = field(default_factory=list)
    existing_customers: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # (what, reason)
    owner_ids: dict = field(default_factory=dict, repr=False)  # e-mail -> id of users the back end has
    replace_state: dict | None = field(default=None, repr=False)  # snapshot mode: the document to PUT

    @property
    def empty(self):
        return not self.users and not self.customers and self.replace_state is None

    def question(self):
        """The confirmation question for this plan."""
        if self.replace_state is not None:
            return (f"Replace the whole state of {self.target} with the backup ({len(self.users)} users and "
                    f"{len(self.customers)} customers come back)? [y/N] ")
        return f"Restore {len(self.users)} users and {len(self.customers)} customers into {self.target}? [y/N] "


@dataclass
class RestoreResult:
    """What applying a plan did: counts, failures with reasons, users waiting for their new PIN."""

    users_created: int = 0
    users_existing: int = 0
    customers_created: int = 0
    customers_existing: int = 0
    failures: list = field(default_factory=list)  # "what: reason"
    pins_to_hand_out: list = field(default_factory=list)
    pins_path: Path | None = None


@dataclass
class RestoreReport:
    """One restore from start to verification."""

    plan: RestorePlan
    result: RestoreResult | None = None
    missing: list = field(default_factory=list)
    dry_run: bool = False
    aborted: bool = False

    @property
    def complete(self):
        """True when the restore ran and the back end then held everything the backup has."""
        return not self.aborted and not self.missing


def _customer_label(owner_email, name):
    return f"customer {name!r} of {owner_email}"


def _pin_from_backup(backup, user):
    # Only a legacy hand-made file carries a plain PIN; our own backups hold hashes at most.
    pin = user.get("pin")
    if backup.meta.get("mode") == "legacy" and isinstance(pin, str) and pin:
        return pin
    return None


def _choose_pin(backup, user, pins, restored_pins):
    email = user["email"]
    if email in pins:
        return PIN_FROM_PINS_FILE, pins[email]
    from_backup = _pin_from_backup(backup, user)
    if from_backup:
        return PIN_FROM_BACKUP, from_backup
    if email in restored_pins:
        return PIN_FROM_RESTORED, restored_pins[email]
    return PIN_NEW_RANDOM, None


def _unattributed(backup):
    """Customers the backup cannot give an owner, each with the reason."""
    several_users = "the file has several users and does not say whose customer it is: use --owner EMAIL"
    skipped = [(f"customer {c.get('name')!r}", several_users) for c in backup.unowned_customers]
    skipped += [(f"customer {c.get('name')!r}", "its owner is not in the backup")
                for c in backup.extra.get("orphan_customers", [])]
    return skipped


def plan_restore(backup, current, pins, restored_pins=None, target=""):
    """Plan an API-mode merge: create what the back end lacks, leave what it has (it is newer)."""
    restored_pins = restored_pins or {}
    plan = RestorePlan(target=target, skipped=_unattributed(backup))
    current_users = {u["email"]: u for u in current.users}
    current_customers = current.customer_keys()
    plan.owner_ids = {email: user["id"] for email, user in current_users.items()}
    for user in backup.users:
        email = user["email"]
        if email in current_users:
            plan.existing_users.append(email)
        else:
            source, pin = _choose_pin(backup, user, pins, restored_pins)
            plan.users.append(UserToCreate(email, source, pin))
        for customer in user["customers"]:
            key = (email, customer["name"])
            if key in current_customers:
                plan.existing_customers.append(key)
            else:
                body = {name: customer[name] for name in CUSTOMER_FIELDS if name in customer}
                plan.customers.append(CustomerToCreate(email, customer["name"], body))
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
    newer += [_customer_label(owner_of.get(c.get("user_id"), "an unknown owner"), c["name"])
              for cid, c in current_customers.items() if backup_customers.get(cid) != c]
    if newer:
        raise RestoreError(f"the back end holds newer data than the backup ({len(newer)} records, e.g. "
                           f"{', '.join(newer[:3])}): refusing to replace its whole state; "
                           "restore with BACKEND_MODE=babs10 to merge through the API instead")
    plan = RestorePlan(target=target)
    plan.existing_users = [u["email"] for uid, u in backup_users.items() if uid in current_users]
    plan.existing_customers = [cid for cid in backup_customers if cid in current_customers]
    plan.users = [UserToCreate(u["email"], "the backup's PIN hash") for uid, u in backup_users.items()
                  if uid not in current_users]
    plan.customers = [CustomerToCreate(owner_of.get(c.get("user_id"), "an unknown owner"), c["name"], c)
                      for cid, c in backup_customers.items() if cid not in current_customers]
    if plan.users or plan.customers:
        plan.replace_state = backup.to_admin_state()
    return plan


def describe_plan(plan):
    """The plan as lines for --dry-run and logs: every action, never a PIN."""
    lines = []
    if plan.replace_state is not None:
        lines.append(f"replace the whole state of {plan.target} with the backup (ids, PIN hashes and timestamps "
                     "come back exactly)")
    for user in plan.users:
        lines.append(f"create user {user.email} ({PIN_WORDS.get(user.pin_source, user.pin_source)})")
    for customer in plan.customers:
        orders = len(customer.body.get("orders") or [])
        lines.append(f"create {_customer_label(customer.owner_email, customer.name)} ({orders} orders)")
    if plan.existing_users or plan.existing_customers:
        lines.append(f"leave {len(plan.existing_users)} users and {len(plan.existing_customers)} customers the back "
                     "end already has as they are")
    lines += [f"skip {what}: {reason}" for what, reason in plan.skipped]
    if plan.empty:
        lines.append("nothing to create" + ("" if plan.skipped else
                                            ": the back end already holds every user and customer of the backup"))
    return lines


class _Applier:
    """Carries out one API-mode plan over one client; the client's policy retries each record, nothing here."""

    def __init__(self, client, plan, settings, stopping):
        self.client = client
        self.plan = plan
        self.settings = settings
        self.stopping = stopping or threading.Event()
        self.result = RestoreResult(users_existing=len(plan.existing_users),
                                    customers_existing=len(plan.existing_customers),
                                    pins_path=restored_pins_path(settings.data_dir))
        self.owner_ids = dict(plan.owner_ids)
        self.lock = threading.Lock()

    def attempt(self, call, what):
        """Run call once, the client's retry policy being the only one; return (answer, 1)."""
        if self.stopping.is_set():
            raise RestoreError("stopped before it was done")
        return call(), 1

    def fail(self, what, reason):
        log.error("restore of %s failed: %s", what, reason)
        with self.lock:
            self.result.failures.append(f"{what}: {reason}")

    def create_user(self, user, pin):
        what = f"user {user.email}"
        try:
            # A POST lost on the way back is retried as a new POST; the duplicate quirk answers "exists".
            (outcome, answer, retried), attempts = self.attempt(lambda: self.client.create_user(user.email, pin),
                                                                what)
            attempts += retried
        except (BackendError, RestoreError) as exc:
            if isinstance(exc, BackendRejected) and user.pin_source in PINS_TO_HAND_OUT:
                record_restored_pins(self.settings.data_dir, {user.email: None})
            self.fail(what, exc)
            return
        ours = outcome == "created"
        if outcome == "exists" and user.pin_source in PINS_TO_HAND_OUT:
            ours = self.pin_opens(user.email, pin)
            if ours is False:
                # Someone signed up again with a PIN of their own: ours would open nothing.
                record_restored_pins(self.settings.data_dir, {user.email: None})
        with self.lock:
            self.owner_ids[user.email] = answer["id"]
            if outcome == "created" or (ours and attempts > 1):
                self.result.users_created += 1
                if user.pin_source in PINS_TO_HAND_OUT:
                    self.result.pins_to_hand_out.append(user.email)
            else:
                self.result.users_existing += 1

    def pin_opens(self, email, pin):
        """True/False when sign-in says whether the PIN opens the account; None when it cannot tell."""
        try:
            return self.client.signin(email, pin)
        except BackendError as exc:
            log.warning("could not check the PIN of existing user %s: %s", email, exc)
            return None

    def create_customer(self, customer):
        what = _customer_label(customer.owner_email, customer.name)
        owner_id = self.owner_ids.get(customer.owner_email)
        if owner_id is None:
            self.fail(what, f"its owner {customer.owner_email} could not be restored")
            return
        try:
            (outcome, _, retried), attempts = self.attempt(lambda: self.client.create_customer(owner_id, customer.body),
                                                           what)
            attempts += retried
        except (BackendError, RestoreError) as exc:
            self.fail(what, exc)
            return
        with self.lock:
            # "exists" after a lost answer is the customer our first try created.
            if outcome == "created" or attempts > 1:
                self.result.customers_created += 1
            else:
                self.result.customers_existing += 1

    def pins_for_users(self):
        """The PIN of each user to create; new random ones are recorded before any account exists."""
        waiting = read_restored_pins(self.settings.data_dir)
        users, pins, fresh = [], {}, {}
        for user in self.plan.users:
            if user.pin_source == PIN_NEW_RANDOM and user.email in waiting:
                # Another run gave this user a PIN after our plan was made: never replace it.
                user = UserToCreate(user.email, PIN_FROM_RESTORED, waiting[user.email])
            elif user.pin_source == PIN_NEW_RANDOM:
                fresh[user.email] = new_random_pin()
            users.append(user)
            pins[user.email] = user.pin or fresh[user.email]
        # Written first, so a crash after the POST cannot lose the only copy of a PIN.
        record_restored_pins(self.settings.data_dir, fresh)
        return users, pins

    def forget_pins_opening_nothing(self):
        """Users the back end has whose waiting PIN no longer opens them signed up again with a PIN of their own."""
        waiting = read_restored_pins(self.settings.data_dir)
        stale = {email: None for email in self.plan.existing_users
                 if email in waiting and self.pin_opens(email, waiting[email]) is False}
        record_restored_pins(self.settings.data_dir, stale)

    def run(self):
        self.forget_pins_opening_nothing()
        users, pins = self.pins_for_users()
        with ThreadPoolExecutor(self.settings.restore_workers) as pool:
            list(pool.map(lambda user: self.create_user(user, pins[user.email]), users))
            list(pool.map(self.create_customer, self.plan.customers))
        self.result.pins_to_hand_out.sort()
        self.result.failures.sort()
        if self.result.pins_to_hand_out:
            log.warning("restored users needing their new PIN from %s: %s", self.result.pins_path,
                        ", ".join(self.result.pins_to_hand_out))
        return self.result


def apply_plan(client, plan, settings, stopping=None):
    """Carry out an API-mode plan: users first, then customers, in parallel over one client."""
    result = _Applier(client, plan, settings, stopping).run()
    log.info("restore created %d users and %d customers; %d users and %d customers were already there; %d failed",
             result.users_created, result.customers_created, result.users_existing, result.customers_existing,
             len(result.failures))
    return result


def restore_snapshot(client, backup):
    """Snapshot mode: put the whole backed-up state back in one request (ids and PIN hashes included)."""
    answer = client.put_admin_state(backup.to_admin_state())
    log.info("snapshot restore put back %d users and %d customers", backup.counts()["users"],
             backup.counts()["customers"])
    return answer


def verify_restore(backup, current):
    """What of the backup the back end still lacks: users by e-mail, customers by (owner e-mail, name)."""
    have_users = {u["email"] for u in current.users}
    missing = [f"user {u['email']}" for u in backup.users if u["email"] not in have_users]
    lacking = sorted(backup.customer_keys() - current.customer_keys())
    missing += [_customer_label(email, name) for email, name in lacking]
    have_orphans = {c.get("id") for c in current.extra.get("orphan_customers", [])}
    lost_orphans = [c for c in backup.extra.get("orphan_customers", []) if c.get("id") not in have_orphans]
    if backup.unowned_customers:
        missing.append(f"{len(backup.unowned_customers)} customers the file gives no owner (use --owner EMAIL)")
    if lost_orphans:
        missing.append(f"{len(lost_orphans)} customers whose owner is not in the backup")
    return missing


def restore_now(settings, backup, dry_run=False, client=None, confirm=None, stopping=None, current=None):
    """Read the back end (unless given the read a decision rests on), plan, apply, re-read and verify."""
    if client is None:
        with BackendClient(settings) as own_client:
            return restore_now(settings, backup, dry_run, own_client, confirm, stopping, current)
    snapshot_mode = settings.backend_mode == "snapshot"
    pins = {} if snapshot_mode else load_pins_file(settings.pins_file)
    restored_pins = {} if snapshot_mode else read_restored_pins(settings.data_dir)
    current = client.read_snapshot() if current is None else current
    if snapshot_mode:
        plan = plan_snapshot_restore(backup, current, target=settings.snapshot_url)
    else:
        plan = plan_restore(backup, current, pins, restored_pins, target=settings.backend_url)
    report = RestoreReport(plan=plan, dry_run=dry_run)
    for line in describe_plan(plan):
        log.info("plan: %s", line)
    if dry_run or plan.empty:
        report.missing = verify_restore(backup, current)
        return report
    if confirm is not None and not confirm(plan):
        report.aborted = True
        return report
    if snapshot_mode:
        restore_snapshot(client, backup)
        report.result = RestoreResult(users_created=len(plan.users), customers_created=len(plan.customers))
    else:
        report.result = apply_plan(client, plan, settings, stopping)
    report.missing = verify_restore(backup, client.read_snapshot())
    if report.missing and not report.dry_run:
        log.error("after the restore %d records of the backup are still missing", len(report.missing))
    return report


def _describe_source(backup, path):
    counts = backup.counts()
    return f"{path} ({counts['users']} users, {counts['customers']} customers, {counts['orders']} orders)"


def choose_backup(settings, file=None, owner_email=None):
    """The backup to restore and a line saying which: --file inside DATA_DIR, else the latest good one."""
    if file is None:
        if owner_email is not None:
            raise RestoreError("--owner applies to a legacy file: give that file with --file")
        backup = BackupStore(settings).latest_good_backup()
        if backup is None:
            raise BackupFileError(f"no good backup in {settings.data_dir}: nothing to restore from")
        return backup, _describe_source(backup, backup.meta["path"])
    path, data_dir = Path(file).expanduser().resolve(), settings.data_dir.expanduser().resolve()
    if not path.is_relative_to(data_dir):
        raise RestoreError(f"--file {file} is outside DATA_DIR ({data_dir}): copy it into DATA_DIR first")
    try:
        backup = parse_backup(read_backup_bytes(path), owner_email=owner_email)
    except BackupFileError as exc:
        raise BackupFileError(f"{path}: {exc}") from None
    return backup, _describe_source(backup, path)


def describe_report(report):
    """The outcome as lines for the restore command: what was done, PIN hand-out, verification."""
    lines = describe_plan(report.plan) if report.dry_run or report.plan.empty else []
    result = report.result
    if report.aborted:
        return ["aborted: nothing was changed"]
    if result is not None:
        lines.append(f"created {result.users_created} users and {result.customers_created} customers; "
                     f"{result.users_existing} users and {result.customers_existing} customers were already there; "
                     f"{len(result.failures)} failed")
        lines += [f"failed: {failure}" for failure in result.failures]
        lines += [f"skipped {what}: {reason}" for what, reason in report.plan.skipped]
        if result.pins_to_hand_out:
            lines.append(f"new PINs for {', '.join(result.pins_to_hand_out)} are in {result.pins_path}: "
                         "hand them out")
    if report.dry_run:
        lines.append("dry run: nothing was changed")
    elif report.complete:
        lines.append("verified: the back end holds every user and customer of the backup")
    if report.missing and not report.dry_run:
        shown = ", ".join(report.missing[:MISSING_SHOWN]) + (", ..." if len(report.missing) > MISSING_SHOWN else "")
        lines.append(f"NOT COMPLETE: the back end still lacks {shown}")
    return lines
