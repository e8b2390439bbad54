"""A BABS10-compatible in-memory back end for demos and tests, able to simulate the host's sleep.

It reproduces the contract of babs10-api.md, quirks included, and what was measured on the real
server (FastAPI, pydantic v2, passlib bcrypt): e-mails normalised as pydantic's EmailStr, PINs
hashed with bcrypt inside one "event loop" that every request waits for, nulls that hide an
owner's customers, non-finite numbers read back as null, 307 on a trailing slash and the rest.
It adds the snapshot-mode admin endpoints (GET/PUT /api/admin/snapshot, POST /api/admin/sleep)
behind a bearer token. The snapshot document is lossless: bcrypt hashes, nulls, and non-finite
money (written "NaN", "Infinity" or "-Infinity", since JSON has no such numbers) come back exactly.
"""

import argparse
import collections
import copy
import email.message
import hmac
import json
import logging
import math
import os
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

import bcrypt

from . import emails

log = logging.getLogger(__name__)

DEFAULT_PIN_HASH_ROUNDS = 12  # the real server's passlib default
MAX_TRIGGERS = 100
RECENT_TRIGGERS = 10
DUPLICATE_EMAIL = "Internal server error: 400: User with this email already exists"
BCRYPT_HASH_RE = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
# passlib's rules, applied before bcrypt sees the PIN: it counts the characters of the str (MAX_PASSWORD_SIZE),
# refuses NUL bytes, and hands bcrypt only the first 72 bytes (bcrypt 5 itself refuses longer keys).
MAX_PIN_CHARACTERS = 4096
BCRYPT_KEY_BYTES = 72
PIN_TOO_LONG = "Internal server error: password exceeds maximum allowed size"
PIN_WITH_NUL = "Internal server error: bcrypt does not allow NULL bytes in password"
PYDANTIC_ERRORS_URL = "https://errors.pydantic.dev/2.11/v"
CORS_METHODS = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"  # Starlette's list for allow_methods=["*"]
NON_FINITE_NAMES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class ApiError(Exception):
    """An answer other than success, carried as its status, FastAPI-style detail and extra headers."""

    def __init__(self, status, detail, headers=None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


class Redirect(Exception):
    """The path is not routed but is with (or without) a trailing slash: Starlette answers 307 there."""

    def __init__(self, path):
        super().__init__(path)
        self.path = path


class StopServer(Exception):
    """Raised between two polls of serve_forever once a stop was asked for."""


class FieldError(Exception):
    """One field of a request body failing validation, as a pydantic error type and message."""

    def __init__(self, kind, message, ctx=None, loc=()):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.ctx = ctx
        self.loc = tuple(loc)


def utc_now():
    """Server time as BABS10 writes it: UTC, ISO-8601, no zone."""
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat()


def local_now():
    """The server's local time, naive, as it stamps backup triggers (datetime.now())."""
    return datetime.now().isoformat()


def record_times():
    """created_at and updated_at of a new record: two clock reads (the app's two default factories), never equal."""
    created = datetime.now(timezone.utc).replace(tzinfo=None)
    updated = max(datetime.now(timezone.utc).replace(tzinfo=None), created + timedelta(microseconds=1))
    return created.isoformat(), updated.isoformat()


def new_id():
    return str(uuid.uuid4())


class EventLoop:
    """One request at a time, in arrival order: the real server hashes PINs inside its one asyncio loop.

    The one leaving hands the loop straight to the next in line, so a finished request wakes one waiter, not all.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._waiting = collections.deque()  # an Event per request in line, first come first
        self._busy = False

    def __enter__(self):
        with self._lock:
            if not self._busy:
                self._busy = True
                return
            turn = threading.Event()
            self._waiting.append(turn)
        turn.wait()

    def __exit__(self, *exc_info):
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()  # still busy: the next one has it now
            else:
                self._busy = False


# --- e-mails and PINs as the real server treats them ---

def normalise_email(value):
    """The address pydantic v2's EmailStr stores for value; FieldError with its 422 reason when it refuses it."""
    if not isinstance(value, str):
        raise FieldError("string_type", "Input should be a valid string")
    try:
        return emails.normalise_email(value)
    except emails.EmailRefused as error:
        raise _email_error(error.reason) from None


def _email_error(reason):
    return FieldError("value_error", f"value is not a valid email address: {reason}", ctx={"reason": reason})


def pin_key(pin):
    """The bytes bcrypt is given for a PIN after passlib's checks; ApiError 500 with passlib's message otherwise."""
    if len(pin) > MAX_PIN_CHARACTERS:
        raise ApiError(500, PIN_TOO_LONG)
    try:
        secret = pin.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate: passlib fails the same way, the app wraps it
        raise ApiError(500, f"Internal server error: {error}") from None
    if b"\0" in secret:
        raise ApiError(500, PIN_WITH_NUL)
    return secret[:BCRYPT_KEY_BYTES]


def hash_pin(pin, rounds):
    """A bcrypt hash of the PIN at the given cost, `$2b$<rounds>$...` as passlib writes it."""
    return bcrypt.hashpw(pin_key(pin), bcrypt.gensalt(rounds)).decode("ascii")


def verify_pin(pin, pin_hash):
    return bcrypt.checkpw(pin_key(pin), pin_hash.encode("ascii"))


# --- request bodies, validated as FastAPI and pydantic v2 do (422 with a list detail) ---

REQUIRED = object()
UNSET = object()


def invalid(loc, message, kind, value=None, ctx=None):
    """One pydantic error as FastAPI's 422 lists it (its input shown without NaN, which JSON cannot carry)."""
    error = {"type": kind, "loc": list(loc), "msg": message, "input": finite_or_none(value)}
    if ctx:
        error["ctx"] = ctx
    return error


def is_json_content_type(value):
    """FastAPI parses a body as JSON when its Content-Type is missing, application/json or application/*+json."""
    if not value:
        return True
    message = email.message.Message()
    message["content-type"] = value
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def request_body(request):
    """The body FastAPI hands the model: parsed JSON, the raw bytes when not JSON, or REQUIRED when empty."""
    if not request.raw_body:
        return REQUIRED
    if not is_json_content_type(request.headers.get("Content-Type")):
        return request.raw_body.decode("utf-8", "replace")
    try:
        return json.loads(request.raw_body)  # NaN and Infinity included, as Starlette's request.json()
    except json.JSONDecodeError as error:
        raise ApiError(422, [invalid(("body", error.pos), "JSON decode error", "json_invalid", {},
                                     {"error": error.msg})]) from None
    except (ValueError, RecursionError):
        raise ApiError(400, "There was an error parsing the body") from None


def validate_model(request, fields):
    """Check the body against {name: (check, default, UNSET or REQUIRED)} as pydantic does: all errors in one 422."""
    body = request_body(request)
    if body is REQUIRED:
        raise ApiError(422, [invalid(("body",), "Field required", "missing")])
    if not isinstance(body, dict):
        raise ApiError(422, [invalid(("body",), "Input should be a valid dictionary or object to extract fields from",
                                     "model_attributes_type", body)])
    values, errors = {}, []
    for name, (check, default) in fields.items():
        if name not in body:
            if default is REQUIRED:
                errors.append(invalid(("body", name), "Field required", "missing", body))
            elif default is not UNSET:
                values[name] = copy.deepcopy(default)
            continue
        try:
            values[name] = check(body[name])
        except FieldError as error:
            errors.append(invalid(("body", name, *error.loc), error.message, error.kind, body[name], error.ctx))
    if errors:
        raise ApiError(422, errors)
    return values


def text(value):
    if not isinstance(value, str):
        raise FieldError("string_type", "Input should be a valid string")
    return value


def optional_number(value):
    """Optional[float] in pydantic's lax mode: None kept (the poisoning), numeric strings and booleans converted."""
    if value is None or isinstance(value, float):
        return value
    if isinstance(value, (bool, int)):
        try:
            return float(value)
        except OverflowError:
            raise FieldError("float_type", "Input should be a valid number") from None
    if isinstance(value, str):
        try:
            if not value.isascii():
                raise ValueError(value)
            return float(value)  # strips whitespace and takes "1_000", "nan" and "inf" as pydantic does
        except ValueError:
            raise FieldError("float_parsing", "Input should be a valid number, unable to parse string as a number") \
                from None
    raise FieldError("float_type", "Input should be a valid number")


def optional_orders(value):
    """Optional[List[Dict[str, Any]]]: None kept; non-finite numbers inside become None, which is how they read back."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise FieldError("list_type", "Input should be a valid list")
    for index, order in enumerate(value):
        if not isinstance(order, dict):
            raise FieldError("dict_type", "Input should be a valid dictionary", loc=(index,))
    return finite_or_none(value)


def anything(value):
    return finite_or_none(value)


def finite_or_none(value):
    """value with every non-finite float replaced by None, as pydantic v2 serialises them (ser_json_inf_nan)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [finite_or_none(item) for item in value]
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    return value


USER_BODY = {"email": (normalise_email, REQUIRED), "pin": (text, REQUIRED)}
CUSTOMER_BODY = {"name": (text, REQUIRED), "money_given": (optional_number, 0.0),
                 "total_spent": (optional_number, 0.0), "orders": (optional_orders, [])}
CUSTOMER_CHANGES = {"money_given": (optional_number, UNSET), "total_spent": (optional_number, UNSET),
                    "orders": (optional_orders, UNSET)}
TRIGGER_BODY = {"user": (anything, None), "action": (anything, None), "timestamp": (anything, None)}


# --- answers as the app's response models give them ---

def customer_key(user_id, name):
    """The app's key of a customer; owner a's "b_c" and owner a_b's "c" collide in it: an "already exists"."""
    return f"{user_id}_{name}"


def public_user(user):
    return {key: user[key] for key in ("id", "email", "created_at", "updated_at")}


# CustomerResponse's typed fields: a stored None in one of them fails the model, which the app turns into a 500.
RESPONSE_TYPES = {"money_given": ("float_type", "Input should be a valid number"),
                  "total_spent": ("float_type", "Input should be a valid number"),
                  "orders": ("list_type", "Input should be a valid list")}


class ResponseInvalid(Exception):
    """A stored customer that CustomerResponse refuses, with pydantic's ValidationError text."""


def public_customer(customer):
    """A customer as CustomerResponse shows it (no owner, non-finite as null); ResponseInvalid for a stored null."""
    failed = [name for name in RESPONSE_TYPES if customer[name] is None]
    if failed:
        count = f"{len(failed)} validation error{'s' if len(failed) > 1 else ''}"
        lines = [f"{count} for CustomerResponse"]
        for name in failed:
            kind, message = RESPONSE_TYPES[name]
            lines += [name, f"  {message} [type={kind}, input_value=None, input_type=NoneType]",
                      f"    For further information visit {PYDANTIC_ERRORS_URL}/{kind}"]
        raise ResponseInvalid("\n".join(lines))
    return finite_or_none(copy.deepcopy({key: value for key, value in customer.items() if key != "user_id"}))


def answered_customer(customer):
    try:
        return public_customer(customer)
    except ResponseInvalid as error:
        raise ApiError(500, f"Internal server error: {error}") from None


# --- the snapshot document of PUT /api/admin/snapshot: anything malformed is a 400 ---

def parse_json(raw):
    """Strict JSON for the admin document: NaN and Infinity are no JSON, so they are a 422 here."""
    if not raw.strip():
        raise ApiError(422, [invalid(("body",), "Field required", "missing")])
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except ValueError:
        raise ApiError(422, [invalid(("body", 0), "JSON decode error", "json_invalid", {})]) from None


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def _is_timestamp(value):
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def _is_money(value):
    """A stored money field: a finite number, null (a poisoned customer) or the name of a non-finite one."""
    if value is None or (isinstance(value, str) and value in NON_FINITE_NAMES):
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_orders(value):
    return value is None or (isinstance(value, list) and all(isinstance(order, dict) for order in value))


def _is_stored_email(value):
    try:
        return isinstance(value, str) and normalise_email(value) == value
    except FieldError:
        return False


def _is_id(value):
    return isinstance(value, str) and value != ""


def _is_any(value):
    return True


def money_document(value):
    """A stored money value for the snapshot document: JSON has no NaN or Infinity, so those go by name."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def money_stored(value):
    if isinstance(value, str):
        return NON_FINITE_NAMES[value]
    return None if value is None else float(value)


TIMESTAMP = (_is_timestamp, "an ISO-8601 timestamp")
USER_FIELDS = {
    "id": (_is_id, "a non-empty string"),
    "email": (_is_stored_email, "a valid e-mail address in the server's normalised form"),
    "pin_hash": (lambda v: isinstance(v, str) and BCRYPT_HASH_RE.fullmatch(v) is not None, "a bcrypt hash"),
    "created_at": TIMESTAMP, "updated_at": TIMESTAMP}
CUSTOMER_FIELDS = {
    "id": (_is_id, "a non-empty string"), "user_id": (_is_id, "a non-empty string"),
    "name": (lambda v: isinstance(v, str), "a string"),
    "money_given": (_is_money, 'a number, null, "NaN", "Infinity" or "-Infinity"'),
    "total_spent": (_is_money, 'a number, null, "NaN", "Infinity" or "-Infinity"'),
    "orders": (_is_orders, "a list of objects or null"),
    "created_at": TIMESTAMP, "updated_at": TIMESTAMP}
TRIGGER_FIELDS = {"id": (_is_id, "a non-empty string"), "user": (_is_any, ""), "action": (_is_any, ""),
                  "timestamp": (_is_any, ""), "created_at": TIMESTAMP}


def _require(condition, message):
    if not condition:
        raise ApiError(400, f"invalid snapshot: {message}")


def _check_list(records, name, fields):
    _require(isinstance(records, list), f"'{name}' must be a list")
    for index, record in enumerate(records):
        where = f"{name}[{index}]"
        _require(isinstance(record, dict), f"{where} is not an object")
        missing, unknown = sorted(set(fields) - set(record)), sorted(set(record) - set(fields))
        _require(not missing, f"{where} lacks {', '.join(missing)}")
        _require(not unknown, f"{where} has unknown field(s) {', '.join(unknown)}")
        for key, (is_valid, description) in fields.items():
            _require(is_valid(record[key]), f"{where}.{key} must be {description}")
    return records


def _require_unique(values, what):
    seen = set()
    for value in values:
        _require(value not in seen, f"{what} {value!r} appears twice")
        seen.add(value)


def parse_state(doc):
    """Check a whole snapshot document; return (users by email, customers by id, triggers)."""
    _require(isinstance(doc, dict), "the document must be an object")
    unknown = sorted(set(doc) - {"users", "customers", "backup_triggers"})
    _require(not unknown, f"unknown top-level key(s) {', '.join(unknown)}")
    users = _check_list(doc.get("users"), "users", USER_FIELDS)
    customers = _check_list(doc.get("customers"), "customers", CUSTOMER_FIELDS)
    triggers = _check_list(doc.get("backup_triggers", []), "backup_triggers", TRIGGER_FIELDS)
    _require(len(triggers) <= MAX_TRIGGERS, f"more than {MAX_TRIGGERS} backup_triggers")
    _require_unique((u["id"] for u in users), "user id")
    _require_unique((u["email"] for u in users), "user email")
    _require_unique((c["id"] for c in customers), "customer id")
    _require_unique((customer_key(c["user_id"], c["name"]) for c in customers), "customer key (user_id_name)")
    customers_by_id = {c["id"]: {**c, "money_given": money_stored(c["money_given"]),
                                 "total_spent": money_stored(c["total_spent"])} for c in customers}
    return {u["email"]: u for u in users}, customers_by_id, triggers


def state_document(state):
    """The state as the snapshot document carries it (non-finite money by name)."""
    customers = [{**c, "money_given": money_document(c["money_given"]), "total_spent": money_document(c["total_spent"])}
                 for c in state["customers"]]
    return {**state, "customers": customers}


class DemoState:
    """All the back end's data behind one lock, and the simulated stop and cold start of the host."""

    def __init__(self, idle_sleep=0.0, cold_start=0.0, pin_hash_rounds=DEFAULT_PIN_HASH_ROUNDS):
        self._lock = threading.Lock()
        self.idle_sleep = idle_sleep
        self.cold_start = cold_start
        self.pin_hash_rounds = pin_hash_rounds
        self._asleep = False
        self._last_request = time.monotonic()
        self._awake_at = 0.0
        self._erase()

    def _erase(self):
        self._users = {}  # normalised email -> user record (with pin_hash), in insertion order
        self._customers = {}  # id -> customer record (with user_id), in insertion order
        self._keys = collections.Counter()  # customer_key -> customers holding it: the app's dict, O(1) as there
        self._triggers = []

    def admit_request(self):
        """Count one inbound request; wake the host if it had stopped. Returns the seconds to wait first."""
        with self._lock:
            now = time.monotonic()
            idle_too_long = self.idle_sleep > 0 and now - self._last_request >= self.idle_sleep
            if self._asleep or idle_too_long:
                self._erase()
                self._asleep = False
                self._awake_at = now + self.cold_start
            self._last_request = max(now, self._awake_at)
            return max(0.0, self._awake_at - now)

    def sleep_now(self):
        """The host stops now: data gone, the next request pays the cold start."""
        with self._lock:
            self._erase()
            self._asleep = True

    def create_user(self, email, pin):
        """A new user for a normalised e-mail; the duplicate check comes first, as in the app, then the hash."""
        with self._lock:
            if email in self._users:
                raise ApiError(500, DUPLICATE_EMAIL)
        pin_hash = hash_pin(pin, self.pin_hash_rounds)  # outside the data lock: the idle clock must not wait
        with self._lock:
            if email in self._users:
                raise ApiError(500, DUPLICATE_EMAIL)
            created_at, updated_at = record_times()
            user = {"id": new_id(), "email": email, "pin_hash": pin_hash, "created_at": created_at,
                    "updated_at": updated_at}
            self._users[email] = user
            return public_user(user)

    def sign_in(self, email, pin):
        with self._lock:
            user = self._users.get(email)
        if user is None or not verify_pin(pin, user["pin_hash"]):
            raise ApiError(401, "Invalid email or PIN")
        return public_user(user)

    def list_users(self):
        with self._lock:
            return [public_user(user) for user in self._users.values()]

    def get_user(self, email):
        with self._lock:
            if email not in self._users:
                raise ApiError(404, "User not found")
            return public_user(self._users[email])

    def create_customer(self, user_id, fields):
        """Store a customer from validated fields; returns the stored record (with user_id)."""
        with self._lock:
            key = customer_key(user_id, fields["name"])
            if self._keys[key]:
                raise ApiError(400, "Customer with this name already exists for this user")
            created_at, updated_at = record_times()
            customer = {"id": new_id(), "user_id": user_id, "name": fields["name"],
                        "money_given": fields["money_given"], "total_spent": fields["total_spent"],
                        "orders": copy.deepcopy(fields["orders"]), "created_at": created_at, "updated_at": updated_at}
            self._customers[customer["id"]] = customer
            self._keys[key] += 1
            return copy.deepcopy(customer)

    def customers_of(self, user_id):
        """The stored records of one owner, in insertion order."""
        with self._lock:
            return copy.deepcopy([c for c in self._customers.values() if c["user_id"] == user_id])

    def _own_customer(self, customer_id, user_id):
        customer = self._customers.get(customer_id)
        if customer is None or customer["user_id"] != user_id:
            raise ApiError(404, "Customer not found")
        return customer

    def update_customer(self, customer_id, user_id, changes):
        """Change fields in place, so the customer keeps its place in the list; only updated_at moves."""
        with self._lock:
            customer = self._own_customer(customer_id, user_id)
            customer.update(copy.deepcopy(changes), updated_at=utc_now())  # never the name: the key stays
            return copy.deepcopy(customer)

    def delete_customer(self, customer_id, user_id):
        with self._lock:
            customer = self._own_customer(customer_id, user_id)
            self._keys[customer_key(customer["user_id"], customer["name"])] -= 1
            del self._customers[customer_id]

    def trigger_backup(self, fields):
        """Record exactly {id, user, action, timestamp, created_at}, stamped in the server's local time."""
        trigger = {"id": new_id(), "user": fields["user"], "action": fields["action"],
                   "timestamp": fields["timestamp"], "created_at": local_now()}
        with self._lock:
            self._triggers = (self._triggers + [copy.deepcopy(trigger)])[-MAX_TRIGGERS:]
        return trigger["id"]

    def backup_status(self):
        with self._lock:
            triggers = copy.deepcopy(self._triggers)
        return {"status": "healthy", "backup_triggers_count": len(triggers),
                "recent_triggers": triggers[-RECENT_TRIGGERS:], "last_backup": triggers[-1] if triggers else None}

    def snapshot(self):
        with self._lock:
            return copy.deepcopy({"users": list(self._users.values()), "customers": list(self._customers.values()),
                                  "backup_triggers": self._triggers})

    def replace(self, doc):
        """Swap in a whole state document, checked first so a bad one leaves the state untouched."""
        users, customers, triggers = parse_state(doc)
        with self._lock:
            self._users, self._customers, self._triggers = users, customers, triggers
            self._keys = collections.Counter(customer_key(c["user_id"], c["name"]) for c in customers.values())
        return len(users), len(customers)


# --- answers on the wire ---

class Reply:
    """One answer: status, body bytes, content type (None: no such header) and extra headers."""

    def __init__(self, status, body=b"", content_type=None, headers=None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = dict(headers or {})


def json_reply(status, payload, headers=None):
    """Compact JSON in raw UTF-8 as FastAPI renders it; a lone surrogate raises UnicodeEncodeError, as there."""
    body = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    return Reply(status, body, "application/json", headers)


def admin_reply(payload):
    """The admin endpoints escape non-ASCII instead: a lossless snapshot must carry any stored string."""
    return Reply(200, json.dumps(payload, allow_nan=False, separators=(",", ":")).encode("ascii"), "application/json")


def plain_500():
    """What Starlette's outermost error handler answers when the app itself fails."""
    return Reply(500, b"Internal Server Error", "text/plain; charset=utf-8")


# --- routes: each takes (server, request) and returns (status, payload) or a Reply ---

class Request:
    """What a route needs of one HTTP request."""

    def __init__(self, raw_body, query, params, headers):
        self.raw_body = raw_body
        self.query = query
        self.params = params
        self.headers = headers

    def arg(self, name):
        """A query parameter; repeated, its last value counts, as in Starlette."""
        return self.query.get(name, [None])[-1]


def required_user_id(request):
    user_id = request.arg("user_id")
    if not user_id:
        raise ApiError(400, "user_id is required")
    return user_id


def require_admin(server, request):
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), server.admin_token.encode()):
        raise ApiError(401, "Not authenticated", {"WWW-Authenticate": "Bearer"})


def root(server, request):
    return 200, {"message": "Hello World from BABS10 API"}


def health(server, request):
    return 200, {"status": "healthy", "mongo_available": False, "timestamp": utc_now()}


def status_checks(server, request):
    return 200, []  # the app template's status checks live in MongoDB, absent in the in-memory mode


def create_user(server, request):
    body = validate_model(request, USER_BODY)
    return 201, server.state.create_user(body["email"], body["pin"])


def sign_in(server, request):
    body = validate_model(request, USER_BODY)
    return 200, server.state.sign_in(body["email"], body["pin"])


def list_users(server, request):
    return 200, server.state.list_users()


def get_user(server, request):
    return 200, server.state.get_user(request.params["email"])  # as typed: this route does not normalise


def create_customer(server, request):
    fields = validate_model(request, CUSTOMER_BODY)
    return 201, answered_customer(server.state.create_customer(required_user_id(request), fields))


def list_customers(server, request):
    user_id = request.arg("user_id")
    if user_id is None:
        raise ApiError(422, [invalid(("query", "user_id"), "Field required", "missing")])
    try:
        return 200, [public_customer(c) for c in server.state.customers_of(user_id)]
    except ResponseInvalid:
        return 200, []  # the app's internal error path: one bad customer hides them all


def update_customer(server, request):
    changes = validate_model(request, CUSTOMER_CHANGES)
    customer_id = request.params["customer_id"]
    return 200, answered_customer(server.state.update_customer(customer_id, required_user_id(request), changes))


def delete_customer(server, request):
    server.state.delete_customer(request.params["customer_id"], required_user_id(request))
    return 200, {"message": "Customer deleted successfully"}


def trigger_backup(server, request):
    backup_id = server.state.trigger_backup(validate_model(request, TRIGGER_BODY))
    return 200, {"status": "success", "message": "Backup triggered", "backup_id": backup_id}


def backup_status(server, request):
    return 200, server.state.backup_status()


def admin_get_snapshot(server, request):
    require_admin(server, request)
    return admin_reply(state_document(server.state.snapshot()))


def admin_put_snapshot(server, request):
    require_admin(server, request)
    users, customers = server.state.replace(parse_json(request.raw_body))
    return 200, {"status": "ok", "users": users, "customers": customers}


def admin_sleep(server, request):
    require_admin(server, request)
    server.state.sleep_now()
    return 200, {"status": "ok", "message": "Host stopped; the next request pays the cold start"}


def openapi(server, request):
    """A small OpenAPI document of the routes this server offers, where FastAPI serves its generated one."""
    paths = {}
    for route in server.routes:
        if route.in_schema:
            summary = route.handler.__name__.replace("_", " ").title()
            paths.setdefault(route.template, {})[route.method.lower()] = {
                "summary": summary, "operationId": f"{route.handler.__name__}_{route.method.lower()}"}
    return 200, {"openapi": "3.1.0", "info": {"title": "FastAPI", "version": "0.1.0"}, "paths": paths}


def docs_page(title):
    def page(server, request):
        html = (f"<!DOCTYPE html><html><head><title>{title}</title></head><body>"
                f"<p>{title}: the API is described at <a href=\"/openapi.json\">/openapi.json</a>.</p></body></html>")
        return Reply(200, html.encode("utf-8"), "text/html; charset=utf-8")
    return page


class Route:
    """One method and path template, e.g. ("GET", "/api/users/{email}"); a parameter matches one segment."""

    def __init__(self, method, template, handler, admin=False, in_schema=True):
        self.method = method
        self.template = template
        self.handler = handler
        self.admin = admin
        self.in_schema = in_schema
        self.pattern = re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)))

    def methods(self):
        """Starlette serves HEAD wherever it serves GET."""
        return (self.method, "HEAD") if self.method == "GET" else (self.method,)


ROUTES = [
    Route("GET", "/api/", root),
    Route("GET", "/api/health", health),
    Route("GET", "/api/status", status_checks),
    Route("POST", "/api/users", create_user),
    Route("GET", "/api/users", list_users),
    Route("POST", "/api/users/signin", sign_in),
    Route("GET", "/api/users/{email}", get_user),
    Route("POST", "/api/customers", create_customer),
    Route("GET", "/api/customers", list_customers),
    Route("PUT", "/api/customers/{customer_id}", update_customer),
    Route("DELETE", "/api/customers/{customer_id}", delete_customer),
    Route("POST", "/api/backup/trigger", trigger_backup),
    Route("GET", "/api/backup/status", backup_status),
    Route("GET", "/api/admin/snapshot", admin_get_snapshot, admin=True, in_schema=False),
    Route("PUT", "/api/admin/snapshot", admin_put_snapshot, admin=True, in_schema=False),
    Route("POST", "/api/admin/sleep", admin_sleep, admin=True, in_schema=False),
    Route("GET", "/openapi.json", openapi, in_schema=False),
    Route("GET", "/docs", docs_page("FastAPI - Swagger UI"), in_schema=False),
    Route("GET", "/redoc", docs_page("FastAPI - ReDoc"), in_schema=False),
]


def find_route(routes, method, path):
    """The route and path parameters for (method, path) as Starlette picks them; else 405, 307 or 404 as it does."""
    # 405 lists the methods of the first route whose path matched; the 307 goes to the path with or without
    # its trailing slash when that one is routed.
    allowed = None
    for route in routes:
        match = route.pattern.fullmatch(path)
        if match is None:
            continue
        if method in route.methods():
            return route, match.groupdict()
        allowed = allowed or route.methods()
    if allowed:
        raise ApiError(405, "Method Not Allowed", {"allow": ", ".join(allowed)})
    if path != "/":
        other = path.rstrip("/") if path.endswith("/") else path + "/"
        if any(route.pattern.fullmatch(other) for route in routes):
            raise Redirect(other)
    raise ApiError(404, "Not Found")


def redirect_url(server, headers, path, query):
    """The absolute URL Starlette puts in a redirect: always http (it knows of no proxy), the Host as sent."""
    host = headers.get("Host") or server.base_url().split("://", 1)[1]
    location = f"http://{host}{path}" + (f"?{query}" if query else "")
    return quote(location, safe=":/%#?=@[]!$&'()*+,;")


def preflight(origin, headers):
    """Starlette's CORSMiddleware answer to a preflight, configured as the app is: all allowed, credentials on."""
    extra = {"Vary": "Origin", "Access-Control-Allow-Methods": CORS_METHODS, "Access-Control-Max-Age": "600",
             "Access-Control-Allow-Credentials": "true", "Access-Control-Allow-Origin": origin}
    if headers.get("Access-Control-Request-Headers"):
        extra["Access-Control-Allow-Headers"] = headers["Access-Control-Request-Headers"]
    return Reply(200, b"OK", "text/plain; charset=utf-8", extra)


def with_cors(reply, origin, headers):
    """The CORS headers Starlette adds to an answer to a cross-origin request (one with an Origin header)."""
    if origin is None:
        return reply
    if "Cookie" in headers:
        reply.headers.update({"Access-Control-Allow-Origin": origin, "Vary": "Origin"})
    else:
        reply.headers["Access-Control-Allow-Origin"] = "*"
    reply.headers["Access-Control-Allow-Credentials"] = "true"
    return reply


def dispatch(server, method, path, query, raw_body, headers):
    """Answer one request as the real app would: CORS, routing, the route, its errors; never raises."""
    origin = headers.get("Origin")
    if origin is not None and method == "OPTIONS" and "Access-Control-Request-Method" in headers:
        return preflight(origin, headers)
    try:
        try:
            route, params = find_route(server.routes, method, path)
            result = route.handler(server, Request(raw_body, parse_qs(query, keep_blank_values=True), params, headers))
            reply = result if isinstance(result, Reply) else json_reply(*result)
        except Redirect as redirect:
            reply = Reply(307, headers={"location": redirect_url(server, headers, redirect.path, query)})
        except ApiError as error:
            reply = json_reply(error.status, {"detail": error.detail}, error.headers)
    except UnicodeEncodeError:
        # The real server stores a lone surrogate, then fails to encode any answer holding it.
        log.warning("%s %s: the answer holds a lone surrogate, which UTF-8 cannot carry: 500", method, path)
        return plain_500()
    except Exception:  # an app bug must still answer, as FastAPI does
        log.exception("%s %s failed", method, path)
        return plain_500()
    return with_cors(reply, origin, headers)


class BabsHandler(BaseHTTPRequestHandler):
    """Answers each request through the route table; keeps connections alive (HTTP/1.1)."""

    protocol_version = "HTTP/1.1"
    server_version = "BABS10-demo/1.0"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

    def answer(self):
        """Every method goes through the route table, which knows the allowed ones (405 otherwise)."""
        method, started = self.command, time.monotonic()
        wait = self.server.state.admit_request()
        if wait > 0:
            time.sleep(wait)  # the simulated cold start itself, paid before the app sees the request
        url = urlsplit(self.path)
        path = unquote(url.path)  # Starlette routes on the decoded path: %2F is a slash there
        try:
            raw_body = self.read_body()
        except ApiError as error:
            reply = json_reply(error.status, {"detail": error.detail})
        else:
            with self.server.event_loop:
                reply = dispatch(self.server, method, path, url.query, raw_body, self.headers)
        # Logged before answering, so the line exists by the time the client sees the answer.
        log.info("%s %s -> %d in %.3f s", method, url.path, reply.status, time.monotonic() - started)
        self.send_reply(reply, with_body=method != "HEAD")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = answer

    def read_body(self):
        """The request body, by Content-Length or chunked; a malformed framing closes the connection."""
        transfer_encoding = self.headers.get("Transfer-Encoding")
        if transfer_encoding is not None:
            self.close_connection = True  # unless the whole chunked body is read below
            if transfer_encoding.replace(" ", "").lower().split(",")[-1] != "chunked":
                raise ApiError(400, "Invalid Transfer-Encoding")
            body = self.read_chunked()
            self.close_connection = False
            return body
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError(length)
        except ValueError:
            self.close_connection = True
            raise ApiError(400, "Invalid Content-Length") from None
        return self.rfile.read(length)

    def read_chunked(self):
        chunks = []
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size < 0:
                    raise ValueError(size)
            except ValueError:
                raise ApiError(400, "Invalid chunked body") from None
            if size == 0:
                break
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.readline(1024) not in (b"\r\n", b"\n"):
                raise ApiError(400, "Invalid chunked body")
            chunks.append(chunk)
        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
            pass  # trailer fields: ignored
        return b"".join(chunks)

    def send_reply(self, reply, with_body=True):
        self.send_response(reply.status)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(reply.body)

    def log_request(self, code="-", size="-"):
        """Silenced: answer() logs each request itself, without bodies."""

    def log_message(self, format, *args):
        log.info("%s: %s", self.address_string(), format % args)


class DemoServer(ThreadingHTTPServer):
    """The threaded HTTP server carrying the state, the admin token, the routes and the one event loop."""

    daemon_threads = True
    stop_requested = False
    # socketserver's default backlog of 5 drops the SYNs of a burst of new connections (a restore's parallel
    # requests through a proxy), and each dropped one costs a 1 s retransmit.
    request_queue_size = 128

    def __init__(self, address, state, admin_token=None):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.state = state
        self.admin_token = admin_token
        self.routes = [route for route in ROUTES if admin_token is not None or not route.admin]
        self.event_loop = EventLoop()
        super().__init__(address, BabsHandler)

    def server_bind(self):
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def request_stop(self, signum=None, frame=None):
        """Signal handler: only sets a flag, since an exception raised at an arbitrary point can be
        swallowed (serve_forever catches Exception around process_request) or leak a held lock."""
        self.stop_requested = True

    def service_actions(self):
        """Called by serve_forever between polls, outside its error handling: a safe place to leave."""
        if self.stop_requested:
            raise StopServer()

    def handle_error(self, request, client_address):
        log.info("connection from %s ended with an error", client_address[0], exc_info=True)

    def base_url(self):
        host = f"[{self.server_name}]" if ":" in self.server_name else self.server_name
        return f"http://{host}:{self.server_port}"


# --- the demo shop of --seed-demo ---

DEMO_OWNER = "owner@example.com"
DEMO_CUSTOMERS = [
    # name, money given, orders as (date, items as (desc, qty, color, size, price), comments)
    ("Maria Lopez", 150.0, [("2025-08-21", [("Amazon 1", "1", "", "", "60.94"), ("Zara dress", "1", "red", "M", "45.90")], ""),
                            ("2025-09-02", [("Shein top", "2", "white", "S", "12.50")], "pick up Friday")]),
    ("Ahmed Khan", 80.0, [("2025-08-30", [("Nike socks", "3", "black", "L", "9.99")], "")]),
    ("Sofia Rossi", 0.0, [("2025-09-05", [("H&M jeans", "1", "blue", "38", "29.99"), ("Belt", "1", "brown", "", "14.00")],
                           "gift wrap")]),
    ("Chen Wei", 200.0, [("2025-09-10", [("Amazon 2", "1", "", "", "120.35")], ""),
                         ("2025-09-12", [("Phone case", "2", "green", "", "8.75")], "")]),
    ("Grace Okafor", 25.0, []),
]


def demo_order(date, items, comments):
    year, month, day = date.split("-")
    return {"id": new_id(), "orderRef": "", "orderDate": date,
            "items": [{"desc": desc, "qty": qty, "color": color, "size": size, "price": price}
                      for desc, qty, color, size, price in items],
            "comments": comments, "savedAt": f"{int(month)}/{int(day)}/{year}, 10:15:00 AM"}


def seed_demo(state, pin):
    """Fill the state with one owner and a few customers with believable orders."""
    owner = state.create_user(DEMO_OWNER, pin)
    for name, money_given, orders in DEMO_CUSTOMERS:
        total = sum(float(qty) * float(price) for _, items, _ in orders for _, qty, _, _, price in items)
        state.create_customer(owner["id"], {"name": name, "money_given": money_given, "total_spent": round(total, 2),
                                            "orders": [demo_order(*order) for order in orders]})


def seconds(text):
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def hash_rounds(text):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 4 <= value <= 31:
        raise argparse.ArgumentTypeError(f"{text!r} is not a bcrypt cost from 4 to 31")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python3 -m sleepguard.demo_backend",
        description="BABS10-compatible in-memory back end that can simulate the host's sleep. "
                    "The first line on stdout is its base URL.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    parser.add_argument("--idle-sleep", type=seconds, default=0.0, metavar="SECONDS",
                        help="erase all data after this long without a request, like the host stopping (default 0: never)")
    parser.add_argument("--cold-start", type=seconds, default=0.0, metavar="SECONDS",
                        help="delay of the first request after a stop (default 0)")
    parser.add_argument("--seed-demo", action="store_true",
                        help=f"start with a demo shop: owner {DEMO_OWNER} and five customers")
    parser.add_argument("--demo-pin", default="1234",
                        help="PIN of the demo owner (default 1234, acceptable for demo data only; never printed)")
    parser.add_argument("--token", default=os.environ.get("DEMO_API_TOKEN") or None,
                        help="bearer token enabling /api/admin/* (default: $DEMO_API_TOKEN; unset: admin disabled)")
    parser.add_argument("--token-file", metavar="PATH",
                        help="read the admin token from this file instead (the launcher's --demo: kept out of "
                             "argv and the environment)")
    parser.add_argument("--pin-hash-rounds", type=hash_rounds, default=DEFAULT_PIN_HASH_ROUNDS, metavar="COST",
                        help=f"bcrypt cost of PIN hashes (default {DEFAULT_PIN_HASH_ROUNDS}, as the real server: "
                             "about 0.25 s a hash, during which every request waits; tests pass 4)")
    parser.add_argument("--verbose", action="store_true", help="log each request (never bodies) to stderr")
    return parser


def serve(argv=None):
    """Run the server until SIGINT or SIGTERM; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.token_file:
        try:
            with open(args.token_file, encoding="ascii") as token_file:
                args.token = token_file.read(4096).strip()
        except (OSError, UnicodeDecodeError) as error:
            sys.stderr.write(f"demo back end: cannot read --token-file {args.token_file}: "
                             f"{getattr(error, 'strerror', None) or error}\n")
            return 2
    state = DemoState(idle_sleep=args.idle_sleep, cold_start=args.cold_start, pin_hash_rounds=args.pin_hash_rounds)
    try:
        server = DemoServer((args.host, args.port), state, admin_token=args.token or None)
    except OSError as error:
        sys.stderr.write(f"demo back end: cannot listen on {args.host} port {args.port}: {error.strerror or error}\n")
        return 1
    try:
        if args.seed_demo:
            seed_demo(state, args.demo_pin)
        signal.signal(signal.SIGINT, server.request_stop)
        signal.signal(signal.SIGTERM, server.request_stop)
        print(server.base_url(), flush=True)
        server.serve_forever(poll_interval=0.1)
    except ApiError as error:  # a --demo-pin the real server would refuse (NUL byte, over 4096 characters)
        sys.stderr.write(f"demo back end: --demo-pin refused: {error.detail}\n")
        return 2
    except StopServer:
        log.info("stopping")
    finally:
        server.server_close()
    return 0


def main():
    return serve()


if __name__ == "__main__":
    sys.exit(main())
