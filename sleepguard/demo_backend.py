"""A BABS10-compatible in-memory back end for demos and tests, able to simulate the host's sleep.

It reproduces the contract of babs10-api.md, quirks included, and adds the snapshot-mode admin
endpoints (GET/PUT /api/admin/snapshot, POST /api/admin/sleep) behind a bearer token.
"""

import argparse
import copy
import hashlib
import hmac
import json
import logging
import math
import os
import re
import secrets
import signal
import socket
import socketserver
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

PIN_HASH_ITERATIONS = 20000  # modest on purpose: tests seed hundreds of users
MAX_TRIGGERS = 100
RECENT_TRIGGERS = 10
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
PIN_HASH_RE = re.compile(r"pbkdf2_sha256\$([1-9][0-9]{0,6})\$([0-9a-f]{16,128})\$([0-9a-f]{64})")
DUPLICATE_EMAIL = "Internal server error: 400: User with this email already exists"


class ApiError(Exception):
    """An answer other than success, carried as its status and FastAPI-style detail."""

    def __init__(self, status, detail):
        super().__init__(detail)
        self.status = status
        self.detail = detail


class StopServer(Exception):
    """Raised between two polls of serve_forever once a stop was asked for."""


def utc_now():
    """Server time as BABS10 writes it: UTC, ISO-8601, no zone."""
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat()


def new_id():
    return str(uuid.uuid4())


def hash_pin(pin, iterations=PIN_HASH_ITERATIONS):
    """Salted PBKDF2 of a PIN as `pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>`."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8", "surrogatepass"), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_pin(pin, pin_hash):
    match = PIN_HASH_RE.fullmatch(pin_hash)
    if not match:
        return False
    iterations, salt_hex, digest_hex = match.groups()
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8", "surrogatepass"), bytes.fromhex(salt_hex),
                                 int(iterations))
    return hmac.compare_digest(digest.hex(), digest_hex)


def public_user(user):
    return {key: user[key] for key in ("id", "email", "created_at", "updated_at")}


def public_customer(customer):
    """A customer as the API shows it: no owner field."""
    return copy.deepcopy({key: value for key, value in customer.items() if key != "user_id"})


# --- request body validation, answering like FastAPI/pydantic (422 with a list detail) ---

def invalid(loc, message, kind):
    return ApiError(422, [{"loc": list(loc), "msg": message, "type": kind}])


def parse_json(raw):
    if not raw.strip():
        raise invalid(("body",), "Field required", "missing")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except ValueError:
        raise invalid(("body", 0), "JSON decode error", "json_invalid") from None


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def body_object(raw):
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise invalid(("body",), "Input should be a valid dictionary", "dict_type")
    return body


def str_field(body, name):
    if name not in body:
        raise invalid(("body", name), "Field required", "missing")
    if not isinstance(body[name], str):
        raise invalid(("body", name), "Input should be a valid string", "string_type")
    return body[name]


def email_field(body):
    email = str_field(body, "email")
    if not EMAIL_RE.fullmatch(email):
        raise invalid(("body", "email"), "value is not a valid email address", "value_error")
    return email


def number_field(body, name, default):
    value = body.get(name, default)
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(value)
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(value)
    except ValueError:
        raise invalid(("body", name), "Input should be a valid number", "float_parsing") from None
    return number


def orders_field(body, default):
    orders = body.get("orders", default)
    if not isinstance(orders, list) or not all(isinstance(order, dict) for order in orders):
        raise invalid(("body", "orders"), "Input should be a valid list of objects", "list_type")
    return orders


# --- the snapshot document of PUT /api/admin/snapshot: anything malformed is a 400 ---

def _is_timestamp(value):
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_id(value):
    return isinstance(value, str) and value != ""


def _is_any(value):
    return True


TIMESTAMP = (_is_timestamp, "an ISO-8601 timestamp")
USER_FIELDS = {
    "id": (_is_id, "a non-empty string"),
    "email": (lambda v: isinstance(v, str) and EMAIL_RE.fullmatch(v), "a valid e-mail address"),
    "pin_hash": (lambda v: isinstance(v, str) and PIN_HASH_RE.fullmatch(v),
                 "of the form pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>"),
    "created_at": TIMESTAMP, "updated_at": TIMESTAMP}
CUSTOMER_FIELDS = {
    "id": (_is_id, "a non-empty string"), "user_id": (_is_id, "a non-empty string"),
    "name": (lambda v: isinstance(v, str), "a string"),
    "money_given": (_is_number, "a number"), "total_spent": (_is_number, "a number"),
    "orders": (lambda v: isinstance(v, list) and all(isinstance(o, dict) for o in v), "a list of objects"),
    "created_at": TIMESTAMP, "updated_at": TIMESTAMP}
TRIGGER_FIELDS = {"id": (_is_id, "a non-empty string"), "user": (_is_any, ""), "action": (_is_any, ""),
                  "timestamp": (_is_any, ""), "received_at": TIMESTAMP}


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
    _require_unique(((c["user_id"], c["name"]) for c in customers), "customer (user_id, name)")
    customers_by_id = {c["id"]: {**c, "money_given": float(c["money_given"]), "total_spent": float(c["total_spent"])}
                       for c in customers}
    return {u["email"]: u for u in users}, customers_by_id, triggers


class DemoState:
    """All the back end's data behind one lock, and the simulated stop and cold start of the host."""

    def __init__(self, idle_sleep=0.0, cold_start=0.0):
        self._lock = threading.Lock()
        self.idle_sleep = idle_sleep
        self.cold_start = cold_start
        self._asleep = False
        self._last_request = time.monotonic()
        self._awake_at = 0.0
        self._erase()

    def _erase(self):
        self._users = {}  # email -> user record (with pin_hash)
        self._customers = {}  # id -> customer record (with user_id)
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
        pin_hash = hash_pin(pin)  # outside the lock: the KDF is slow on purpose
        with self._lock:
            if email in self._users:
                raise ApiError(500, DUPLICATE_EMAIL)
            now = utc_now()
            user = {"id": new_id(), "email": email, "pin_hash": pin_hash, "created_at": now, "updated_at": now}
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

    def create_customer(self, user_id, name, money_given, total_spent, orders):
        with self._lock:
            if any(c["user_id"] == user_id and c["name"] == name for c in self._customers.values()):
                raise ApiError(400, "Customer with this name already exists for this user")
            now = utc_now()
            customer = {"id": new_id(), "user_id": user_id, "name": name, "money_given": money_given,
                        "total_spent": total_spent, "orders": copy.deepcopy(orders),
                        "created_at": now, "updated_at": now}
            self._customers[customer["id"]] = customer
            return public_customer(customer)

    def list_customers(self, user_id):
        with self._lock:
            return [public_customer(c) for c in self._customers.values() if c["user_id"] == user_id]

    def _own_customer(self, customer_id, user_id):
        customer = self._customers.get(customer_id)
        if customer is None or customer["user_id"] != user_id:
            raise ApiError(404, "Customer not found")
        return customer

    def update_customer(self, customer_id, user_id, changes):
        with self._lock:
            customer = self._own_customer(customer_id, user_id)
            customer.update(copy.deepcopy(changes), updated_at=utc_now())
            return public_customer(customer)

    def delete_customer(self, customer_id, user_id):
        with self._lock:
            self._own_customer(customer_id, user_id)
            del self._customers[customer_id]

    def trigger_backup(self, body):
        trigger = {"id": new_id(), "user": body.get("user"), "action": body.get("action"),
                   "timestamp": body.get("timestamp"), "received_at": utc_now()}
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
        return len(users), len(customers)


# --- routes: each takes (server, request) and returns (status, payload) ---

class Request:
    """What a route needs of one HTTP request."""

    def __init__(self, raw_body, query, params, headers):
        self.raw_body = raw_body
        self.query = query
        self.params = params
        self.headers = headers

    def arg(self, name):
        return self.query.get(name, [None])[0]


def required_user_id(request):
    user_id = request.arg("user_id")
    if not user_id:
        raise ApiError(400, "user_id is required")
    return user_id


def require_admin(server, request):
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), server.admin_token.encode()):
        raise ApiError(401, "Not authenticated")


def root(server, request):
    return 200, {"message": "Hello World from BABS10 API"}


def health(server, request):
    return 200, {"status": "healthy", "mongo_available": False, "timestamp": utc_now()}


def create_user(server, request):
    body = body_object(request.raw_body)
    email, pin = email_field(body), str_field(body, "pin")
    return 201, server.state.create_user(email, pin)


def sign_in(server, request):
    body = body_object(request.raw_body)
    return 200, server.state.sign_in(email_field(body), str_field(body, "pin"))


def list_users(server, request):
    return 200, server.state.list_users()


def get_user(server, request):
    return 200, server.state.get_user(unquote(request.params["email"]))


def create_customer(server, request):
    body = body_object(request.raw_body)
    fields = (str_field(body, "name"), number_field(body, "money_given", 0.0),
              number_field(body, "total_spent", 0.0), orders_field(body, []))
    return 201, server.state.create_customer(required_user_id(request), *fields)


def list_customers(server, request):
    user_id = request.arg("user_id")
    if user_id is None:
        raise invalid(("query", "user_id"), "Field required", "missing")
    return 200, server.state.list_customers(user_id)


def update_customer(server, request):
    body = body_object(request.raw_body)
    changes = {name: number_field(body, name, 0.0) for name in ("money_given", "total_spent") if name in body}
    if "orders" in body:
        changes["orders"] = orders_field(body, [])
    customer_id = unquote(request.params["customer_id"])
    return 200, server.state.update_customer(customer_id, required_user_id(request), changes)


def delete_customer(server, request):
    server.state.delete_customer(unquote(request.params["customer_id"]), required_user_id(request))
    return 200, {"message": "Customer deleted successfully"}


def trigger_backup(server, request):
    backup_id = server.state.trigger_backup(body_object(request.raw_body))
    return 200, {"status": "success", "message": "Backup triggered", "backup_id": backup_id}


def backup_status(server, request):
    return 200, server.state.backup_status()


def admin_get_snapshot(server, request):
    require_admin(server, request)
    return 200, server.state.snapshot()


def admin_put_snapshot(server, request):
    require_admin(server, request)
    users, customers = server.state.replace(parse_json(request.raw_body))
    return 200, {"status": "ok", "users": users, "customers": customers}


def admin_sleep(server, request):
    require_admin(server, request)
    server.state.sleep_now()
    return 200, {"status": "ok", "message": "Host stopped; the next request pays the cold start"}


ROUTES = [(method, re.compile(pattern), route) for method, pattern, route in [
    ("GET", r"/api/", root),
    ("GET", r"/api/health", health),
    ("POST", r"/api/users", create_user),
    ("GET", r"/api/users", list_users),
    ("POST", r"/api/users/signin", sign_in),
    ("GET", r"/api/users/(?P<email>[^/]+)", get_user),
    ("POST", r"/api/customers", create_customer),
    ("GET", r"/api/customers", list_customers),
    ("PUT", r"/api/customers/(?P<customer_id>[^/]+)", update_customer),
    ("DELETE", r"/api/customers/(?P<customer_id>[^/]+)", delete_customer),
    ("POST", r"/api/backup/trigger", trigger_backup),
    ("GET", r"/api/backup/status", backup_status),
    ("GET", r"/api/admin/snapshot", admin_get_snapshot),
    ("PUT", r"/api/admin/snapshot", admin_put_snapshot),
    ("POST", r"/api/admin/sleep", admin_sleep),
]]


def find_route(method, path, admin_enabled):
    """The route for (method, path) and its path parameters; 404 or 405 like FastAPI otherwise."""
    if path.startswith("/api/admin/") and not admin_enabled:
        raise ApiError(404, "Not Found")
    path_matches = False
    for route_method, pattern, route in ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        if route_method == method:
            return route, match.groupdict()
        path_matches = True
    raise ApiError(405, "Method Not Allowed") if path_matches else ApiError(404, "Not Found")


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
            time.sleep(wait)  # the simulated cold start itself
        url = urlsplit(self.path)
        try:
            raw_body = self.read_body()
            route, params = find_route(method, url.path, self.server.admin_token is not None)
            status, payload = route(self.server, Request(raw_body, parse_qs(url.query, keep_blank_values=True),
                                                         params, self.headers))
        except ApiError as error:
            status, payload = error.status, {"detail": error.detail}
        except Exception:  # an app bug must still answer, as FastAPI does
            log.exception("%s %s failed", method, url.path)
            status, payload = 500, {"detail": "Internal Server Error"}
        # Logged before answering, so the line exists by the time the client sees the answer.
        log.info("%s %s -> %d in %.3f s", method, url.path, status, time.monotonic() - started)
        self.send_json(status, payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = answer

    def read_body(self):
        if "Transfer-Encoding" in self.headers:
            self.close_connection = True  # the unread chunked body would poison the connection
            raise ApiError(411, "Length Required")
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError(length)
        except ValueError:
            self.close_connection = True
            raise ApiError(400, "Invalid Content-Length") from None
        return self.rfile.read(length)

    def send_json(self, status, payload):
        data = json.dumps(payload, allow_nan=False).encode("ascii")  # escaped: any string survives, even lone surrogates
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code="-", size="-"):
        """Silenced: answer() logs each request itself, without bodies."""

    def log_message(self, format, *args):
        log.info("%s: %s", self.address_string(), format % args)


class DemoServer(ThreadingHTTPServer):
    """The threaded HTTP server carrying the state and the admin token to the handlers."""

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
        state.create_customer(owner["id"], name, money_given, round(total, 2),
                              [demo_order(*order) for order in orders])


def seconds(text):
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
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
    parser.add_argument("--verbose", action="store_true", help="log each request (never bodies) to stderr")
    return parser


def serve(argv=None):
    """Run the server until SIGINT or SIGTERM; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state = DemoState(idle_sleep=args.idle_sleep, cold_start=args.cold_start)
    if args.seed_demo:
        seed_demo(state, args.demo_pin)
    server = DemoServer((args.host, args.port), state, admin_token=args.token or None)
    try:
        signal.signal(signal.SIGINT, server.request_stop)
        signal.signal(signal.SIGTERM, server.request_stop)
        print(server.base_url(), flush=True)
        server.serve_forever(poll_interval=0.1)
    except StopServer:
        log.info("stopping")
    finally:
        server.server_close()
    return 0


def main():
    return serve()


if __name__ == "__main__":
    sys.exit(main())
