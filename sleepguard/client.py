"""The one HTTP client of the back end: pooled, retried, size-capped, and honest about failures.

Every failure becomes a BackendError subclass with a plain reason, so callers can tell
"unknown" (unreachable, garbage) from a well-formed answer — never an empty dataset by accident.

The retry policy lives here and nowhere else (no caller retries on top of it): a failure with
no answer (refused, reset, timed out, 502/503/504) is tried again after RETRY_BACKOFF,
doubling, up to RETRIES times, for reads, PUTs and the creating POSTs whose duplicate answer
makes a second try safe. Every operation — all its tries and pauses — ends within
READ_TIMEOUT of its start: requests' timeout= restarts with every byte, so a watchdog shuts
the socket when the operation's own clock runs out.
"""

import http.client
import json as jsonlib
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError, ReadTimeoutError

from . import __version__
from .emails import stored_form
from .exceptions import (AnswerTooLarge, BackendError, BackendRejected, BackendUnreachable, BadAnswer,
                         RestartedDuringRead)
from .restart import vanished_during_read
from .settings import require_backend
from .snapshot import Snapshot, utc_now_iso

log = logging.getLogger(__name__)

HOST_DOWN_STATUSES = (502, 503, 504)
# Redirects that keep the method and body (the server's 307 on a trailing slash); others are answers.
REDIRECT_STATUSES = (307, 308)
MAX_REDIRECTS = 3
DEFAULT_PORTS = {"http": 80, "https": 443}
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


def same_origin_redirect(url, location):
    """The URL a redirect from url to location leads to when it keeps scheme, host and port; else None.

    requests would follow any redirect, re-sending a POST body (PINs) to another host or from https
    to plain http; only a same-origin one is taken, with url's own user:password part kept.
    """
    here, there = urlsplit(url), urlsplit(urljoin(url, location))
    if here.scheme.lower() != there.scheme.lower() or (here.hostname or "") != (there.hostname or ""):
        return None
    try:
        ports = [part.port or DEFAULT_PORTS.get(part.scheme.lower()) for part in (here, there)]
    except ValueError:
        return None  # a port that is not a number
    if ports[0] != ports[1]:
        return None
    return urlunsplit((here.scheme, here.netloc, there.path, there.query, ""))


def _nothing_sent(error):
    """True when the request never left: a connection that could not be made cannot have created anything."""
    return any(isinstance(cause, (ConnectTimeoutError, requests.ConnectTimeout)) for cause in _causes(error))


# The watch of the attempt running on this thread; a connection registers with it when it sends.
_current = threading.local()


class _Watch:
    """Shuts the sockets of one attempt when its time is up, so a host trickling bytes cannot hold it."""

    def __init__(self, seconds):
        self.fired = False
        self._connections = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True

    def add(self, connection):
        with self._lock:
            self._connections.append(connection)
            fired = self.fired
        if fired:
            _shut(connection)

    def _fire(self):
        with self._lock:
            self.fired = True
            connections = list(self._connections)
        for connection in connections:
            _shut(connection)

    def __enter__(self):
        _current.watch = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info):
        self._timer.cancel()
        _current.watch = None


def _shut(connection):
    """Shut a connection's socket: a read blocked in it returns at once (the pool then drops it)."""
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed: nothing left to interrupt


class _WatchedConnection(HTTPConnection):
    """An HTTP connection that tells the running attempt's watch about itself before it sends."""

    def request(self, *args, **kwargs):
        watch = getattr(_current, "watch", None)
        if watch is not None:
            watch.add(self)
        return super().request(*args, **kwargs)


class _WatchedHTTPSConnection(_WatchedConnection, HTTPSConnection):
    """The same for HTTPS."""


class _WatchedPool(HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter with watched connections and no retries of its own: ours are in _send."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedPool, "https": _WatchedHTTPSPool}


class _NoAnswer(Exception):
    """One try got no answer; carries the BackendUnreachable to raise if no try is left."""

    def __init__(self, error, sent):
        super().__init__(str(error))
        self.error = error
        self.sent = sent  # False when the request never left this machine


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
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"sleepguard/{__version__}"
        workers = max(settings.backup_workers, settings.restore_workers)
        # Two pools: the back end and, in snapshot mode, possibly another host for SNAPSHOT_URL.
        # max_retries=0: urllib3 neither retries nor logs "Retrying (Retry(...))"; _send says what happened.
        adapter = _WatchedAdapter(pool_connections=2, pool_maxsize=workers + 2, max_retries=0)
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
        """Send one request under the retry policy; return (status, parsed JSON body) for an expected status."""
        status, body, _retried = self._send(method, path_or_url, expect=expect, json=json, params=params, auth=auth)
        return status, body

    def _send(self, method, path_or_url, *, expect=(200,), json=None, params=None, auth=False, safe_to_resend=None):
        """The one retry loop: (status, body, retried), retried True when an earlier try went out unanswered.

        GET and PUT are resent after any failure without an answer; a POST only when safe_to_resend
        (its duplicate answer tells a second try from a first) or when it never left this machine.
        """
        url = path_or_url if path_or_url.startswith(("http://", "https://")) else self.settings.backend_url + path_or_url
        # Label by path only: a URL may carry credentials, a header never goes into a message.
        label = f"{method} {urlsplit(url).path}"
        resendable = safe_to_resend if safe_to_resend is not None else method in ("GET", "HEAD", "PUT")
        deadline = time.monotonic() + self.settings.read_timeout
        retried = False
        for attempt in range(self.settings.retries + 1):
            try:
                status, raw, content_type = self._attempt(method, url, label, deadline, json, params, auth)
                break
            except _NoAnswer as failed:
                pause = self.settings.retry_backoff * 2 ** attempt
                if attempt == self.settings.retries or not (resendable or not failed.sent) \
                        or time.monotonic() + pause >= deadline:
                    raise failed.error from None
                retried = retried or failed.sent
                log.debug("%s: %s; trying again in %.2f s", label, failed.error, pause)
                time.sleep(pause)
        if status in expect:
            return status, self._parse(raw, label, content_type), retried
        detail = _detail(self._parse_quietly(raw))
        if 400 <= status < 500:
            hint = " (check API_TOKEN)" if auth and status in (401, 403) else ""
            raise BackendRejected(f"{label}: refused with {status}{hint}: {detail}", status=status)
        raise BadAnswer(f"{label}: unexpected status {status}: {detail}")

    def _attempt(self, method, url, label, deadline, json, params, auth):
        """One try within the operation's deadline: (status, body bytes, content type), or _NoAnswer."""
        # A pause may overshoot the deadline a little; the smallest try then ends at once as timed out.
        left = max(deadline - time.monotonic(), 0.001)
        headers = {"Authorization": f"Bearer {self.settings.api_token}"} if auth else None
        timeout = (min(self.settings.connect_timeout, left), left)
        started = time.monotonic()
        timed_out = BackendUnreachable(f"{label}: timed out after {self.settings.read_timeout} s")
        with _Watch(left) as watch:
            try:
                status, raw, content_type = self._follow(method, url, label, json, params, headers, timeout)
            except requests.RequestException as error:
                if watch.fired:
                    raise _NoAnswer(timed_out, sent=True) from None
                reason = _failure_reason(error, self.settings)
                raise _NoAnswer(BackendUnreachable(f"{label}: {reason}"), sent=not _nothing_sent(error)) from None
            except BadAnswer as error:
                if watch.fired:
                    raise _NoAnswer(timed_out, sent=True) from None
                if isinstance(error.__cause__, requests.exceptions.ChunkedEncodingError):
                    raise _NoAnswer(error, sent=True) from None  # cut off mid-answer: worth another try
                raise
        log.debug("%s -> %d in %.3f s", label, status, time.monotonic() - started)
        if status in HOST_DOWN_STATUSES:
            raise _NoAnswer(BackendUnreachable(f"{label}: host answered {status} (asleep or restarting)"), sent=True)
        return status, raw, content_type

    def _follow(self, method, url, label, json, params, headers, timeout):
        """Send, following only a same-origin 307/308 ourselves (requests would follow any): (status, body, type)."""
        for _hop in range(MAX_REDIRECTS + 1):
            with self._session.request(method, url, json=json, params=params, headers=headers, timeout=timeout,
                                       stream=True, allow_redirects=False) as response:
                status = response.status_code
                location = response.headers.get("Location") if status in REDIRECT_STATUSES else None
                if location is None:
                    return status, self._read_body(response, label), response.headers.get("Content-Type",
                                                                                          "no content type")
            followed = same_origin_redirect(url, location)
            if followed is None:
                # The target is not named: a Location may carry anything, and the owner needs only the fact.
                raise BadAnswer(f"{label}: redirected ({status}) to another scheme, host or port; not followed")
            log.debug("%s: redirected (%d) to %s", label, status, urlsplit(followed).path)
            # The Location carries the query already; the body goes again, as 307 and 308 ask.
            url, params = followed, None
        raise BadAnswer(f"{label}: more than {MAX_REDIRECTS} redirects; not followed")

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
        except RecursionError:
            raise BadAnswer(f"{label}: answer is nested too deeply to read") from None

    @staticmethod
    def _parse_quietly(raw):
        try:
            return jsonlib.loads(raw)
        except (ValueError, RecursionError):
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
        savers = self._recent_savers()
        users, customers_by_user_id = self._read_api()
        meta = self._read_meta(started)
        if savers is not None:
            meta["recent_trigger_users"] = savers
        return Snapshot.from_api(users, customers_by_user_id, meta)

    def _recent_savers(self):
        """Who saved last, newest first, once each (the triggers' users); None when the status cannot be read.

        Only the restore's order rests on it, never what is backed up, so a failed status read fails no backup.
        """
        try:
            triggers = self.backup_status()["recent_triggers"]
        except BackendError as exc:
            log.info("who saved last is not known for this read: %s", exc)
            return None
        # The server appends triggers as they come: the last is the newest.
        users = [stored_form(t["user"]) for t in reversed(triggers) if isinstance(t, dict) and isinstance(t.get("user"), str)]
        return list(dict.fromkeys(users))

    def _read_meta(self, started):
        duration = time.monotonic() - started
        log.debug("read the back end (%s mode) in %.2f s", self.settings.backend_mode, duration)
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
        gone = vanished_during_read({user["id"] for user in users}, {user["id"] for user in self.list_users()})
        if gone:
            raise RestartedDuringRead(f"GET /api/users: {len(gone)} of the {len(users)} users vanished during the "
                                      "read: the back end restarted meanwhile")
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
        """GET /api/users/{email} by the address's stored form; None when the back end has no such user."""
        # The server looks this route up without normalising: only the stored form finds the user.
        status, user = self._request("GET", f"/api/users/{quote(stored_form(email), safe='')}", expect=(200, 404))
        if status == 404:
            return None
        return _check_records([user], "GET /api/users/{email}", ("id", "email"))[0]

    # --- writes (for the restore) ---

    def create_user(self, email, pin):
        """POST /api/users: (outcome, user, retried), outcome "created" or "exists" (the 500-wrapped duplicate quirk).

        Resent after a try that got no answer, which the duplicate answer makes safe; retried True then
        says an "exists" may be our own first try.
        """
        label = "POST /api/users"
        status, body, retried = self._send("POST", "/api/users", json={"email": email, "pin": pin},
                                           expect=(201, 500), safe_to_resend=True)
        if status == 201:
            return "created", _check_records([body], label, ("id", "email"))[0], retried
        if "already exists" not in _detail(body):
            raise BadAnswer(f"{label}: server error 500: {_detail(body)}")
        user = self.get_user(email)
        if user is None:
            raise BadAnswer(f"{label}: said the user already exists, but GET /api/users/{{email}} answered 404")
        return "exists", user, retried

    def create_customer(self, user_id, customer):
        """POST /api/customers: (outcome, customer or None, retried); "exists" when the owner has that name already.

        Resent like create_user: the 400 "already exists" tells a second try from a first.
        """
        label = "POST /api/customers"
        body = {"name": customer["name"], "money_given": customer.get("money_given", 0),
                "total_spent": customer.get("total_spent", 0), "orders": customer.get("orders", [])}
        status, answer, retried = self._send("POST", "/api/customers", params={"user_id": user_id}, json=body,
                                             expect=(201, 400), safe_to_resend=True)
        if status == 201:
            return "created", _check_records([answer], label, ("id", "name"))[0], retried
        if "already exists" in _detail(answer):
            return "exists", None, retried
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
