"""Carry out a restore plan over one client, and the whole restore: read, plan, apply, verify.

The applier goes owner by owner, most recently active first: the account (the server hashes
its PIN, one at a time whatever we send), then that owner's customers in parallel, over one
client, which retries what got no answer itself (nothing here retries on top of it). A stop event ends it early:
nothing new starts, the requests in flight finish, and restored_pins.json is left holding the
PINs of exactly the accounts created. It returns what it did; the sentences are wording.py's.
"""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .exceptions import BackendError, BackendRejected
from .pins import (forget_restored_pins, load_pins_file, new_random_pin, pins_or_why_not, read_restored_pins,
                   record_restored_pins, restored_pins_path, with_carried_pins, write_carried_pins)
from .restore_lock import RestoreLock, refuse_if_running
from .plan import (PIN_FROM_RESTORED, PIN_NEW_RANDOM, PINS_TO_HAND_OUT, UserToCreate, customer_label,
                   plan_restore, plan_snapshot_restore, verify_restore)

log = logging.getLogger(__name__)

# Account creations asked for at once after the first owner: the server hashes them one after another anyway, and
# a second one waiting keeps it busy while the first one's answer travels back.
ACCOUNTS_IN_FLIGHT = 2


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
    first_owner: str | None = None  # the most recently active owner, restored first
    first_owner_seconds: float | None = None  # from the start of the applying to that owner complete
    seconds: float | None = None  # from the start of the applying to everyone


@dataclass
class RestoreReport:
    """One restore from start to verification."""

    plan: object
    result: RestoreResult | None = None
    missing: list = field(default_factory=list)  # plan.Missing
    dry_run: bool = False
    aborted: bool = False
    interrupted: bool = False
    pins_file_problem: str = ""  # why the PIN file was not used: its users got new random PINs instead

    @property
    def complete(self):
        """True when the restore ran to its end and the back end then held everything the backup has."""
        return not self.aborted and not self.interrupted and not self.missing


class _Applier:
    """Carries out one API-mode plan over one client; a set stop event lets only the requests in flight finish."""

    def __init__(self, client, plan, settings, stopping, progress=None):
        self.client = client
        self.progress = progress  # RestoreLock (or anything with advance(users_done)): how far we got, for others
        self.plan = plan
        self.data_dir = settings.data_dir
        self.workers = settings.restore_workers
        self.stopping = stopping or threading.Event()
        # Set when a write of the PIN bookkeeping failed: nothing more may start (the caller's event stays its own).
        self.halted = threading.Event()
        self.result = RestoreResult(users_existing=len(plan.existing_users),
                                    customers_existing=len(plan.existing_customers),
                                    pins_path=restored_pins_path(settings.data_dir))
        self.owner_ids = dict(plan.owner_ids)
        self.not_created = set()  # e-mails of users whose account this run did not create
        self.lock = threading.Lock()

    def fail(self, what, reason):
        with self.lock:
            self.result.failures.append(f"{what}: {reason}")

    def stopped(self):
        return self.stopping.is_set() or self.halted.is_set()

    def halting_on_os_error(self, work):
        """work, wrapped so that a failed file write starts nothing more before the error reaches the caller."""
        def guarded(*args):
            try:
                return work(*args)
            except OSError:
                self.halted.set()
                raise
        return guarded

    def create_user(self, user, pin, fresh=False):
        if self.stopped():
            self.not_created.add(user.email)
            return
        if fresh:
            # Written just before its POST, so a crash after it cannot lose the only copy of a PIN, and a quit
            # at once leaves no PIN of an account that was never asked for.
            record_restored_pins(self.data_dir, {user.email: pin})
        what = f"user {user.email}"
        try:
            outcome, answer, retried = self.client.create_user(user.email, pin)
        except BackendRejected as exc:
            # Refused: no account holds this PIN.
            self.not_created.add(user.email)
            self.fail(what, exc)
            return
        except BackendError as exc:
            # No answer even after the client's retries: the account may exist, so its PIN is kept.
            self.fail(what, exc)
            return
        ours = outcome == "created"
        if outcome == "exists" and user.pin_source in PINS_TO_HAND_OUT:
            ours = self.pin_opens(user.email, pin)
            if ours is False:
                # Someone signed up again with a PIN of their own: ours would open nothing.
                forget_restored_pins(self.data_dir, [user.email])
        with self.lock:
            self.owner_ids[user.email] = answer["id"]
            # "exists" after a try that got no answer is the account our first try created.
            if outcome == "created" or (ours and retried):
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
        if self.stopped():
            return
        what = customer_label(customer.owner_email, customer.name)
        owner_id = self.owner_ids.get(customer.owner_email)
        if owner_id is None:
            self.fail(what, f"its owner {customer.owner_email} could not be restored")
            return
        try:
            outcome, _, retried = self.client.create_customer(owner_id, customer.body)
        except BackendError as exc:
            self.fail(what, exc)
            return
        with self.lock:
            # "exists" after a try that got no answer is the customer our first try created.
            if outcome == "created" or retried:
                self.result.customers_created += 1
            else:
                self.result.customers_existing += 1

    def pins_for_users(self):
        """The PIN of each user to create, and the new random ones, recorded before any account exists."""
        waiting = read_restored_pins(self.data_dir)
        users, pins, fresh = [], {}, {}
        for user in self.plan.users:
            if user.pin_source == PIN_NEW_RANDOM and user.email in waiting:
                # Another run gave this user a PIN after our plan was made: never replace it.
                user = UserToCreate(user.email, PIN_FROM_RESTORED, waiting[user.email])
            elif user.pin_source == PIN_NEW_RANDOM:
                fresh[user.email] = new_random_pin()
            users.append(user)
            pins[user.email] = user.pin or fresh[user.email]
        return users, pins, fresh

    def forget_pins_opening_nothing(self):
        """Users the back end has whose waiting PIN no longer opens them signed up again with a PIN of their own."""
        waiting = read_restored_pins(self.data_dir)
        forget_restored_pins(self.data_dir, [email for email in self.plan.existing_users
                                             if email in waiting and self.pin_opens(email, waiting[email]) is False])

    def owners_in_order(self):
        """The plan's owners, most recently active first; a hand-made plan without an order keeps its own."""
        listed = [*self.plan.owner_order, *(user.email for user in self.plan.users),
                  *(customer.owner_email for customer in self.plan.customers)]
        return list(dict.fromkeys(listed))

    def run(self):
        users, pins, fresh = self.pins_for_users()
        started = time.monotonic()
        to_create = {user.email: user for user in users}
        customers_of = {}
        for customer in self.plan.customers:
            customers_of.setdefault(customer.owner_email, []).append(customer)
        create_user = self.halting_on_os_error(
            lambda user: self.create_user(user, pins[user.email], fresh=user.email in fresh))
        users_done = []

        def owner(email, customers_pool):
            """One owner: the account, then all its customers sent at once; returns their futures."""
            if email in to_create:
                create_user(to_create[email])
                with self.lock:
                    users_done.append(email)
                    if self.progress is not None:
                        self.halting_on_os_error(self.progress.advance)(len(users_done))
            return [customers_pool.submit(self.create_customer, customer) for customer in customers_of.get(email, [])]

        try:
            # Owner by owner, most recently active first: the account (the server hashes its PIN, one at a time
            # whatever we send), then that owner's customers at once. Nothing goes ahead of the first owner, who can
            # sign in and see every customer after about one hash. After it, ACCOUNTS_IN_FLIGHT accounts are asked
            # for at a time, so the server always has the next hash waiting while an answer travels back.
            with ThreadPoolExecutor(self.workers) as customers_pool, \
                    ThreadPoolExecutor(ACCOUNTS_IN_FLIGHT) as accounts_pool:
                order = self.owners_in_order()
                for email in order[:1]:
                    failed_before = len(self.result.failures)
                    for future in owner(email, customers_pool):
                        future.result()
                    # Back means signed in with every customer: not when the account or a customer failed.
                    if not self.stopped() and len(self.result.failures) == failed_before:
                        self.result.first_owner = email
                        self.result.first_owner_seconds = time.monotonic() - started
                jobs = [accounts_pool.submit(owner, email, customers_pool) for email in order[1:]]
                for job in jobs:
                    for future in job.result():
                        future.result()
            if not self.stopped():
                # Each check is a sign-in, a hash on the server: only once everyone is back.
                self.forget_pins_opening_nothing()
        finally:
            # Only accounts that exist keep a PIN of this run: the rest were never created (not started, refused).
            forget_restored_pins(self.data_dir, sorted(self.not_created & set(fresh)))
        self.result.seconds = time.monotonic() - started
        self.result.pins_to_hand_out.sort()
        # Accounts first: a customer fails when its owner did, so the account's failure is the cause to show.
        self.result.failures.sort(key=lambda failure: (not failure.startswith("user "), failure))
        return self.result


def apply_plan(client, plan, settings, stopping=None, progress=None):
    """Carry out an API-mode plan owner by owner, most recently active first, over one client.

    progress, when given, is told the number of users done after each (RestoreLock.advance).
    """
    return _Applier(client, plan, settings, stopping, progress).run()


def restore_snapshot(client, backup):
    """Snapshot mode: put the whole backed-up state back in one request (ids and PIN hashes included)."""
    return client.put_admin_state(backup.to_admin_state())


def _pins(settings, without_bad_pins_file):
    """The PIN file's PINs and why it was not used; a bad one raises unless the restore goes on without it."""
    if not without_bad_pins_file:
        return load_pins_file(settings.pins_file), ""
    # A PINS_FILE other than the default was named by the owner: that one missing is a problem too.
    named = Path(settings.pins_file) != Path(settings.data_dir) / "pins.json"
    pins, problem = pins_or_why_not(settings.pins_file, must_exist=named)
    if problem:
        log.warning("restoring without the PIN file, new random PINs instead: %s", problem)
    return pins, problem


def restore_now(settings, backup, client, *, current=None, dry_run=False, confirm=None, stopping=None,
                without_bad_pins_file=False, carried_pins=None):
    """Plan from current (read now when not given), apply unless dry run, declined or stopped, re-read and verify.

    The back end is read at most twice: the read the plan rests on, then the verifying read.
    without_bad_pins_file (the restore service): a loose, missing or malformed PIN file never holds a restore
    up; it is not read, its users get new random PINs, and the report says why (pins_file_problem).
    carried_pins: an off-site copy's (PIN file, restored PINs), planned with and written only once it goes ahead.
    """
    snapshot_mode = settings.backend_mode == "snapshot"
    if snapshot_mode:
        carried_pins = None  # the state put back holds the PIN hashes themselves
    if not dry_run:
        # Before any read: a second restore beside a running one would only race it.
        refuse_if_running(settings.data_dir)
    pins, pins_problem = ({}, "") if snapshot_mode else _pins(settings, without_bad_pins_file)
    restored_pins = {} if snapshot_mode else read_restored_pins(settings.data_dir)
    if carried_pins is not None:
        pins, restored_pins = with_carried_pins(settings.pins_file, pins, restored_pins, carried_pins)
    if current is None:
        current = client.read_snapshot()
    if snapshot_mode:
        plan = plan_snapshot_restore(backup, current, target=settings.snapshot_url)
    else:
        plan = plan_restore(backup, current, pins, restored_pins, target=settings.backend_url)
    for match in plan.pin_matches:
        # Named by key and account only: the PIN stays in the file.
        log.warning("PIN file key %r taken for account %s: they differ only in the local part's case",
                    match.key, match.email)
    if plan.left_out:
        log.warning("%d money fields the backup holds as null are left out: %s", len(plan.left_out),
                    ", ".join(f"{customer_label(item.owner_email, item.name)} {item.field}" for item in plan.left_out))
    report = RestoreReport(plan=plan, dry_run=dry_run, pins_file_problem=pins_problem)
    if dry_run or plan.empty:
        report.missing = verify_restore(backup, current)
        return report
    stopping = stopping or threading.Event()
    # Asked first, then looked at: a Ctrl-C while the question waits sets the event too.
    if (confirm is not None and not confirm(plan)) or stopping.is_set():
        report.aborted = True
        return report
    if carried_pins is not None:
        write_carried_pins(settings, carried_pins)
    # Held to the end of the verifying read: others see a restore running, and none starts beside it.
    with RestoreLock(settings.data_dir, len(plan.users)) as progress:
        if snapshot_mode:
            restore_snapshot(client, backup)
            progress.advance(len(plan.users))
            report.result = RestoreResult(users_created=len(plan.users), customers_created=len(plan.customers))
        else:
            report.result = apply_plan(client, plan, settings, stopping, progress)
        if stopping.is_set():
            # Stopped part-way: what is missing is known (the rest of the plan); no need for a read to say so.
            report.interrupted = True
            return report
        report.missing = verify_restore(backup, client.read_snapshot())
    return report
