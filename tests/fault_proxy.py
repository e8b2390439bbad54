"""A fault-injecting HTTP proxy that tests put in front of a back end to make it misbehave on cue.

Usage::

    with FaultProxy(backend_url) as proxy:
        proxy.set_fault("503", path_prefix="/api/users", count=2)
        requests.get(proxy.url + "/api/users", timeout=5)   # 503 HTML page
        proxy.set_fault("latency", latency=0.025)            # every request 25 ms slower

Fault kinds (``latency`` seconds of delay can be added to any of them):

- ``None``: pass through (delayed by ``latency`` if given).
- ``"latency"``: delay by ``latency`` seconds, then pass through.
- ``"502"`` / ``"503"``: an HTML error page with that status, as a hosting front end sends.
- ``"truncated"``: the real status and headers with the original Content-Length, half the
  body, then the connection closes.
- ``"reset"``: the connection is reset (RST, SO_LINGER 0) without an answer.
- ``"hang"``: no answer while the fault lasts; when it is cleared or replaced, or its
  ``seconds`` run out, the request is passed through (a host waking from a cold start).
  When the proxy stops or ``HANG_CAP_SECONDS`` pass, the connection closes unanswered.
- ``"not_json"``: 200 with ``Content-Type: application/json`` and an HTML body.
- ``"huge"``: 200 with a valid JSON list of about ``huge_bytes`` bytes, streamed in chunks
  (chunked transfer encoding, so only counting the bytes read reveals its size).

A request whose body is cut off (the client was killed while sending it) is dropped, never
forwarded: the upstream sees only whole requests, as behind a real front end.

A fault applies to requests whose path starts with ``path_prefix``, to the next ``count``
of them and/or for ``seconds`` from now; once spent, every request passes through again.
Standard library only.
"""

import http.client
import json
import logging
import socket
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

FAULT_KINDS = (None, "latency", "502", "503", "truncated", "reset", "hang", "not_json", "huge")
HANG_CAP_SECONDS = 120.0
DEFAULT_HUGE_BYTES = 64 * 1024 * 1024
UPSTREAM_TIMEOUT_SECONDS = 60.0

# Hop-by-hop headers describe one connection, so they are never relayed; lengths are recomputed.
_NOT_RELAYED = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length",
})

_ERROR_PAGES = {
    502: "Bad Gateway",
    503: "Service Unavailable",
}

_NOT_JSON_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Service waking up</title></head>\n"
    b"<body><h1>Service waking up</h1><p>Allow up to a minute for it to start.</p></body></html>\n"
)

_HUGE_ITEM = json.dumps({
    "id": "00000000-0000-4000-8000-000000000000",
    "email": "filler@example.com",
    "created_at": "2025-01-01T00:00:00",
    "updated_at": "2025-01-01T00:00:00",
    "padding": "x" * 900,
}).encode()


def _error_page(status):
    """Return an HTML error page like the ones a hosting front end serves."""
    reason = _ERROR_PAGES[status]
    return (
        f"<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\n"
        f"<body><h1>{status} {reason}</h1>\n"
        f"<p>The service is not available right now. Please try again in a moment.</p>\n"
        f"</body></html>\n"
    ).encode()


class _Fault:
    """One active fault rule; its count is spent under the proxy's lock."""

    def __init__(self, kind, path_prefix, count, seconds, latency, huge_bytes, method):
        self.kind = kind
        self.path_prefix = path_prefix
        self.method = method
        self.count = count
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.latency = latency
        self.huge_bytes = huge_bytes
        self.released = threading.Event()

    def expired(self):
        """Say whether the fault's count or time window is spent."""
        if self.count is not None and self.count <= 0:
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline

    def seconds_left(self):
        """Return the time left in the window, or None when the fault has no time limit."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())


class _Server(ThreadingHTTPServer):
    """The listening server: one daemon thread per client connection, never joined on close."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address, proxy):
        self.proxy = proxy
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address):
        # Clients that vanish mid-answer are what this proxy provokes; not worth a traceback.
        log.debug("fault proxy: connection from %s ended with an error", client_address,
                  exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """Reads one request at a time from a keep-alive connection and answers it as told."""

    protocol_version = "HTTP/1.1"
    server_version = "FaultProxy"

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes; Nagle would hold the body back for ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.proxy._track(self.connection)

    def finish(self):
        self.server.proxy._untrack(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format, *args):
        log.debug("fault proxy: " + format, *args)

    def do_GET(self):
        self._answer()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _answer(self):
        proxy = self.server.proxy
        proxy._count_request()
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._send_page(411, b"chunked request bodies are not supported\n", "text/plain")
            return
        body = self.rfile.read(int(length)) if length else b""
        if length and len(body) < int(length):
            # The client went away mid-body: a server (S3 included) never acts on half a request, so neither do we.
            log.debug("fault proxy: request body cut off after %d of %s bytes; dropped", len(body), length)
            self.close_connection = True
            return
        fault = proxy._take_fault(self.path.split("?", 1)[0], self.command)
        kind = fault.kind if fault else None
        if fault and fault.latency > 0 and proxy._stopping.wait(fault.latency):
            self._reset()
            return
        if kind in ("502", "503"):
            self._send_page(int(kind), _error_page(int(kind)), "text/html; charset=utf-8")
        elif kind == "not_json":
            self._send_page(200, _NOT_JSON_PAGE, "application/json")
        elif kind == "reset":
            self._reset()
        elif kind == "hang":
            self._hang(fault, body)
        elif kind == "huge":
            self._send_huge(fault.huge_bytes)
        else:
            self._forward(body, truncate=(kind == "truncated"))

    def _send_page(self, status, page, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(page)

    def _reset(self):
        """Close the connection so the client gets an RST instead of an orderly FIN."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The read buffer holds a reference to the socket; both must go for the close to happen now.
        self.rfile.close()
        self.connection.close()

    def _hang(self, fault, body):
        proxy = self.server.proxy
        window = fault.seconds_left()
        wait = HANG_CAP_SECONDS if window is None else min(window, HANG_CAP_SECONDS)
        fault.released.wait(wait)
        woke_up = fault.released.is_set() or (window is not None and window < HANG_CAP_SECONDS)
        if proxy._stopping.is_set() or not woke_up:
            self._reset()
            return
        self._forward(body, truncate=False)

    def _send_huge(self, huge_bytes):
        """Stream a valid JSON list of about huge_bytes, giving up as soon as the client leaves."""
        proxy = self.server.proxy
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        items_per_chunk = 64
        chunk = b",".join([_HUGE_ITEM] * items_per_chunk)
        chunks = max(1, huge_bytes // (len(chunk) + 1))
        try:
            self._write_chunk(b"[" + chunk)
            for _ in range(chunks - 1):
                if proxy._stopping.is_set():
                    return
                self._write_chunk(b"," + chunk)
            self._write_chunk(b"]")
            self.wfile.write(b"0\r\n\r\n")
        except OSError as error:
            log.debug("fault proxy: client left during a huge answer: %s", error)

    def _write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _forward(self, body, truncate):
        """Send the request upstream and relay the answer, whole or cut in half."""
        proxy = self.server.proxy
        headers = {
            name: value for name, value in self.headers.items()
            if name.lower() not in _NOT_RELAYED
        }
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        connection = proxy._upstream_connection()
        try:
            connection.request(self.command, proxy._upstream_path + self.path, body=body or None,
                               headers=headers)
            response = connection.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException) as error:
            log.debug("fault proxy: upstream failed: %s", error)
            self._send_page(502, _error_page(502), "text/html; charset=utf-8")
            return
        finally:
            connection.close()
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _NOT_RELAYED:
                self.send_header(name, value)
        no_body = self.command == "HEAD" or response.status in (204, 304) or response.status < 200
        if no_body:
            upstream_length = response.getheader("Content-Length")
            if upstream_length is not None:
                self.send_header("Content-Length", upstream_length)
        else:
            self.send_header("Content-Length", str(len(answer)))
        if truncate:
            self.send_header("Connection", "close")
        self.end_headers()
        if no_body:
            return
        if truncate:
            self.wfile.write(answer[: len(answer) // 2])
            self.close_connection = True
        else:
            self.wfile.write(answer)


class FaultProxy:
    """An HTTP proxy on loopback, run in a background thread, that injects faults on request."""

    def __init__(self, upstream_url: str, host="127.0.0.1", port=0):
        parsed = urllib.parse.urlsplit(upstream_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"upstream_url must be an http(s) URL, got {upstream_url!r}")
        self._upstream_scheme = parsed.scheme
        self._upstream_host = parsed.hostname
        self._upstream_port = parsed.port
        self._upstream_path = parsed.path.rstrip("/")
        self._address = (host, port)
        self._lock = threading.Lock()
        self._fault = None
        self._requests_seen = 0
        self._connections = set()
        self._stopping = threading.Event()
        self._server = None
        self._thread = None
        self.url = None

    def start(self) -> "FaultProxy":
        """Bind, then serve in a daemon thread; returns self so it can be chained."""
        self._server = _Server(self._address, self)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"fault-proxy-{port}", daemon=True)
        self._thread.start()
        log.debug("fault proxy at %s in front of %s://%s", self.url, self._upstream_scheme,
                  self._upstream_host)
        return self

    def stop(self):
        """Stop listening, end hanging requests and cut every open client connection."""
        if self._server is None:
            return
        self._stopping.set()
        self.clear()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def set_fault(self, kind: str | None, *, path_prefix: str = "", count: int | None = None,
                  seconds: float | None = None, latency: float = 0.0,
                  huge_bytes: int = DEFAULT_HUGE_BYTES, method: str = ""):
        """Replace the active fault (for one HTTP method only, when given); requests hanging under the previous one
        are let through."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        new_fault = _Fault(kind, path_prefix, count, seconds, latency, huge_bytes, method.upper())
        with self._lock:
            old_fault, self._fault = self._fault, new_fault
        if old_fault is not None:
            old_fault.released.set()

    def clear(self):
        """Pass everything through again and release hanging requests."""
        with self._lock:
            old_fault, self._fault = self._fault, None
        if old_fault is not None:
            old_fault.released.set()

    @property
    def requests_seen(self) -> int:
        """How many requests reached the proxy, faulted or not."""
        with self._lock:
            return self._requests_seen

    @property
    def open_connections(self) -> int:
        """How many client connections are open right now."""
        with self._lock:
            return len(self._connections)

    def _count_request(self):
        with self._lock:
            self._requests_seen += 1

    def _take_fault(self, path, method):
        """Return the fault that applies to this request, spending one of its count."""
        with self._lock:
            fault = self._fault
            if fault is None:
                return None
            if fault.expired():
                self._fault = None
                fault.released.set()
                return None
            if not path.startswith(fault.path_prefix) or fault.method not in ("", method):
                return None
            if fault.count is not None:
                fault.count -= 1
            return fault

    def _track(self, connection):
        with self._lock:
            self._connections.add(connection)

    def _untrack(self, connection):
        with self._lock:
            self._connections.discard(connection)

    def _upstream_connection(self):
        if self._upstream_scheme == "https":
            return http.client.HTTPSConnection(self._upstream_host, self._upstream_port,
                                               timeout=UPSTREAM_TIMEOUT_SECONDS)
        return http.client.HTTPConnection(self._upstream_host, self._upstream_port,
                                          timeout=UPSTREAM_TIMEOUT_SECONDS)
