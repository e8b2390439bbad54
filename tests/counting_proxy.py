"""A plain HTTP forwarder on loopback that counts the requests passing through it by method and path.

Usage::

    with CountingProxy(backend_url) as proxy:
        ...  # point a client at proxy.url
        proxy.count("GET", "/api/users")   # how many listings of the users went through

Standard library only; one upstream connection per request, so it needs no locking of its own
beyond the counter.
"""

import http.client
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Hop-by-hop headers belong to one connection; the length is set again for the body relayed.
SKIPPED_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "host", "content-length"})


class _Relay(BaseHTTPRequestHandler):
    """Counts one request, sends it upstream as it came, and relays the answer whole."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass  # the counter is the record; a line per request would only flood the test output

    def do_GET(self):
        proxy = self.server.proxy
        path = self.path.split("?", 1)[0]
        proxy.record(self.command, path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in SKIPPED_HEADERS}
        upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        self.send_response_only(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in SKIPPED_HEADERS:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_PUT = do_DELETE = do_GET


class CountingProxy:
    """Forwards every request to upstream_url and counts it by (method, path without the query)."""

    def __init__(self, upstream_url):
        self.upstream = urllib.parse.urlsplit(upstream_url)
        self._counts = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Relay)
        self._server.daemon_threads = True
        self._server.proxy = self
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def record(self, method, path):
        with self._lock:
            self._counts[method, path] += 1

    def count(self, method, path):
        """How many requests of this method went to exactly this path (query strings aside)."""
        with self._lock:
            return self._counts[method, path]

    def reset(self):
        with self._lock:
            self._counts.clear()
