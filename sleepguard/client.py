"""The one HTTP client of the back end: pooled, retried, size-capped, and honest about failures.

Every failure becomes a BackendError subclass with a plain reason, so callers can tell
"unknown" (unreachable, garbage) from a well-formed answer — never an empty dataset by accident.
"""

import http.client
import json as jsonlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from . import __version__
from .exceptions import AnswerTooLarge, BackendError, BackendRejected, BackendUnreachable, BadAnswer
from .settings import require_backend
from .snapshot import Snapshot, utc_now_iso

log = logging.getLogger(__name__)

HOST_DOWN_STATUSES = (502, 503, 504)
CHUNK_BYTES = 64 * 1024
DETAIL_CHARS = 200


def _causes(error):
    """The error and everything it wraps: requests hides urllib3's reason inside MaxRetryError."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]


def _failure_reason(error, settings):
    """Say in a few words why a request got no usable answer."""
    causes = list(_causes(error))

    def found(*kinds):
        return any(isinstance(cause, kinds) for cause in causes)

    if found(ConnectionRefusedError):
        return "connection refused"
    if found(NameResolutionError):
        return "host name not found"
    if found(ConnectionResetError):
        return "connection reset"
    if found(requests.exceptions.SSLError):
        return "TLS certificate check failed"
    if any(isinstance(c, ConnectTimeoutError) and not isinstance(c, NewConnectionError) for c in causes) \
            or found(requests.ConnectTimeout):
        return f"connect timed out after {settings.connect_timeout} s"
    if found(ReadTimeoutError, requests.ReadTimeout, TimeoutError):
        return f"timed out after {settings.read_timeout} s"
    if found(http.client.RemoteDisconnected):
        return "connection closed without an answer"
    return f"connection failed ({type(error).__name__})"


def _detail(body):
    """The server's error detail, short; FastAPI validation items keep only place and message (no inputs, no PINs)."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        detail = "; ".join(f"{'.'.join(map(str, item.get('loc', [])))}: {item.get('msg')}"
                           for item in detail if isinstance(item, dict))
    return str(detail)[:DETAIL_CHARS] if detail is not None else "no detail"


def _require(condition, label, what):
    if not condition:
        raise BadAnswer(f"{label}: {what}")


def _check_records(records, label, text_fields):
    """Check a list of dicts, each with the given string fields; name the first thing that is wrong."""
    _require(isinstance(records, list), label, f"expected a list, got {type(records).__name__}")
    for index, record in enumerate(records):
        _require(isinstance(record, dict), label, f"item {index} is {type(record).__name__}, not an object")
        for name in text_fields:
            _require(isinstance(record.get(name), str), label, f"item {index} has no text field '{name}'")
    return records


class BackendClient:
    """Talks to the back end over one pooled session; raises only the BackendError family."""

    def __init__(self, settings):
        require_backend(settings)
        self.settings = settings
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"sleepguard/{__version__}"
        retry = Retry(total=settings.retries, connect=settings.retries, read=settings.retries,
                      status=settings.retries, other=0, backoff_factor=settings.retry_backoff,
                      status_forcelist=HOST_DOWN_STATUSES,
                      # Only idempotent calls are retried after a request went out. urllib3 still retries a
                      # POST on connect errors: nothing was sent then, so nothing can be created twice.
                      allowed_methods=frozenset({"GET", "HEAD", "PUT"}),
                      # A host could ask for any Retry-After; our own backoff keeps the wait bounded.
                      raise_on_status=False, respect_retry_after_header=False)
        workers = max(settings.backup_workers, settings.restore_workers)
        # Two pools: the back end and, in snapshot mode, possibly another host for SNAPSHOT_URL.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=workers + 2, max_retries=retry)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        self._session.close()

    # --- the one core every call goes through ---

    def _request(self, method, path_or_url, *, expect=(200,), json=None, params=None, auth=False):
        """Send one request; return (status, parsed JSON body) for an expected status, else raise."""
        url = path_or_url if path_or_url.startswith(("http://", "https://")) else self.settings.backend_url + path_or_url
        # Label by path only: a URL may carry credentials, a header never goes into a message.
        label = f"{method} {urlsplit(url).path}"
        headers = {"Authorization": f"Bearer {self.settings.api_token}"} if auth else None
        started = time.monotonic()
        try:
            with self._session.request(method, url, json=json, params=params, headers=headers,
                                       timeout=self._timeout, stream=True) as response:
                raw = self._read_body(response, label)
                status, content_type = response.status_code, response.headers.get("Content-Type", "no content type")
        except requests.RequestException as error:
            raise BackendUnreachable(f"{label}: {_failure_reason(error, self.settings)}") from error
        log.debug("%s -> %d in %.3f s", label, status, time.monotonic() - started)
        if status in expect:
            return status, self._parse(raw, label, content_type)
        if status in HOST_DOWN_STATUSES:
            raise BackendUnreachable(f"{label}: host answered {status} (asleep or restarting)")
        detail = _detail(self._parse_quietly(raw))
        if 400 <= status < 500:
            hint = " (check API_TOKEN)" if auth and status in (401, 403) else ""
            raise BackendRejected(f"{label}: refused with {status}{hint}: {detail}", status=status)
        raise BadAnswer(f"{label}: unexpected status {status}: {detail}")

    def _read_body(self, response, label):
        """Read the body up to the size cap, stopping early; a short body is an error, not an answer."""
        cap = self.settings.max_response_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise AnswerTooLarge(f"{label}: answer of {declared} bytes is over MAX_RESPONSE_BYTES ({cap})")
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(CHUNK_BYTES):
                size += len(chunk)
                if size > cap:
                    raise AnswerTooLarge(f"{label}: answer over MAX_RESPONSE_BYTES ({cap}); stopped reading")
                chunks.append(chunk)
        except requests.exceptions.ChunkedEncodingError as error:
            got = response.raw.tell()
            of = f" of {declared}" if declared else ""
            raise BadAnswer(f"{label}: answer truncated: got {got}{of} bytes") from error
        return b"".join(chunks)

    @staticmethod
    def _parse(raw, label, content_type):
        try:
            return jsonlib.loads(raw)
        except ValueError:
            raise BadAnswer(f"{label}: answer is not JSON ({content_type})") from None

    @staticmethod
    def _parse_quietly(raw):
        try:
            return jsonlib.loads(raw)
        except ValueError:
            return None

    # --- reads ---

    def health(self):
        """GET /api/health; return (body, latency in seconds)."""
        started = time.monotonic()
        _, body = self._request("GET", "/api/health")
        latency = time.monotonic() - started
        _require(isinstance(body, dict) and isinstance(body.get("status"), str), "GET /api/health",
                 "no text field 'status'")
        return body, latency

    def backup_status(self):
        """GET /api/backup/status, checked: the trigger counter tells of saves and restarts."""
        label = "GET /api/backup/status"
        _, body = self._request("GET", "/api/backup/status")
        _require(isinstance(body, dict), label, "expected an object")
        count = body.get("backup_triggers_count")
        _require(isinstance(count, int) and not isinstance(count, bool), label, "backup_triggers_count is not a number")
        _require(isinstance(body.get("recent_triggers"), list), label, "recent_triggers is not a list")
        _require(body.get("last_backup") is None or isinstance(body["last_backup"], dict), label,
                 "last_backup is neither an object nor null")
        return body

    def read_snapshot(self):
        """Read all data in the configured mode; any failure fails the whole read (never a partial one)."""
        started = time.monotonic()
        if self.settings.backend_mode == "snapshot":
            doc = self._read_admin_state()
            return Snapshot.from_admin_state(doc, self._read_meta(started))
        users, customers_by_user_id = self._read_api()
        return Snapshot.from_api(users, customers_by_user_id, self._read_meta(started))

    def _read_meta(self, started):
        duration = time.monotonic() - started
        log.info("read the back end (%s mode) in %.2f s", self.settings.backend_mode, duration)
        return {"created_at": utc_now_iso(), "backend_url": self.settings.backend_url,
                "mode": self.settings.backend_mode, "duration_seconds": round(duration, 3)}

    def list_users(self):
        """GET /api/users, checked: every user with a string id and e-mail."""
        _, users = self._request("GET", "/api/users")
        return _check_records(users, "GET /api/users", ("id", "email"))

    def _read_api(self):
        users = self.list_users()
        with ThreadPoolExecutor(self.settings.backup_workers) as pool:
            futures = {user["id"]: pool.submit(self._customers_of, user["id"]) for user in users}
            try:
                customers_by_user_id = {user_id: future.result() for user_id, future in futures.items()}
            except BackendError:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        # A host that restarts mid-read gives old users with some customer lists already empty, which can look
        # like the owner deleted one customer. The API cannot delete users, so a user id gone now means that.
        gone = {user["id"] for user in users} - {user["id"] for user in self.list_users()}
        if gone:
            raise BadAnswer(f"GET /api/users: {len(gone)} of the {len(users)} users vanished during the read: "
                            "the back end restarted meanwhile")
        return users, customers_by_user_id

    def _customers_of(self, user_id):
        customers = self.list_customers(user_id)
        if not customers:
            # The API answers [] on an internal error; a second look costs one request per empty list.
            customers = self.list_customers(user_id)
        return customers

    def _read_admin_state(self):
        label = "GET snapshot URL"
        _, doc = self._request("GET", self.settings.snapshot_url, auth=True)
        _require(isinstance(doc, dict), label, "expected an object")
        _check_records(doc.get("users"), f"{label} users", ("id", "email"))
        _check_records(doc.get("customers"), f"{label} customers", ("id", "name", "user_id"))
        return doc

    def list_customers(self, user_id):
        """GET one user's customers, checked, in the order the server gave them."""
        _, customers = self._request("GET", "/api/customers", params={"user_id": user_id})
        return _check_records(customers, "GET /api/customers", ("id", "name"))

    def get_user(self, email):
        """GET /api/users/{email}; None when the back end says it has no such user."""
        status, user = self._request("GET", f"/api/users/{quote(email, safe='')}", expect=(200, 404))
        if status == 404:
            return None
        return _check_records([user], "GET /api/users/{email}", ("id", "email"))[0]

    # --- writes (for the restore) ---

    def _posted(self, send, label):
        """Send a POST, sending it again after a transient failure; return send()'s answer and whether it was resent.

        To be replaced by the client branch's one retry policy: the minimum the restore needs meanwhile.
        Only a try that got no whole answer is resent (a 503 is an answer): it may have created the record,
        and the resent POST then meets it as "exists", which "retried" lets the caller count as its own.
        """
        for attempt in range(self.settings.retries + 1):
            try:
                return (*send(), attempt > 0)
            except (BackendUnreachable, BadAnswer) as exc:
                if attempt == self.settings.retries or not isinstance(exc.__cause__, requests.RequestException):
                    raise
                pause = self.settings.retry_backoff * 2 ** attempt
                log.debug("%s failed (%s); sending it again in %.2f s", label, exc, pause)
                time.sleep(pause)

    def create_user(self, email, pin):
        """POST /api/users; (outcome, user, retried): "created", or "exists" for the 500-wrapped duplicate quirk."""
        return self._posted(lambda: self._create_user_once(email, pin), "POST /api/users")

    def _create_user_once(self, email, pin):
        label = "POST /api/users"
        status, body = self._request("POST", "/api/users", json={"email": email, "pin": pin}, expect=(201, 500))
        if status == 201:
            return "created", _check_records([body], label, ("id", "email"))[0]
        if "already exists" not in _detail(body):
            raise BadAnswer(f"{label}: server error 500: {_detail(body)}")
        user = self.get_user(email)
        if user is None:
            raise BadAnswer(f"{label}: said the user already exists, but GET /api/users/{{email}} answered 404")
        return "exists", user

    def create_customer(self, user_id, customer):
        """POST /api/customers; (outcome, customer or None, retried): "created", or "exists" when the owner has that name."""
        return self._posted(lambda: self._create_customer_once(user_id, customer), "POST /api/customers")

    def _create_customer_once(self, user_id, customer):
        label = "POST /api/customers"
        body = {"name": customer["name"], "money_given": customer.get("money_given", 0),
                "total_spent": customer.get("total_spent", 0), "orders": customer.get("orders", [])}
        status, answer = self._request("POST", "/api/customers", params={"user_id": user_id}, json=body,
                                       expect=(201, 400))
        if status == 201:
            return "created", _check_records([answer], label, ("id", "name"))[0]
        if "already exists" in _detail(answer):
            return "exists", None
        raise BackendRejected(f"{label}: refused with 400: {_detail(answer)}", status=400)

    def signin(self, email, pin):
        """POST /api/users/signin; True when the PIN opens the account."""
        status, _ = self._request("POST", "/api/users/signin", json={"email": email, "pin": pin}, expect=(200, 401))
        return status == 200

    def put_admin_state(self, state):
        """PUT the whole state document to the snapshot URL (idempotent, so retried)."""
        _, body = self._request("PUT", self.settings.snapshot_url, json=state, auth=True)
        _require(isinstance(body, dict), "PUT snapshot URL", "expected an object")
        return body
