"""A tiny HTTP receiver that tests run as a real process: it records every request it gets, then answers.

    python3 tests/http_receiver.py --port PORT --record FILE

Each request is appended to FILE as one JSON line {"method", "path", "body", "answered"} once
it is done: answered is false when the client hung up during the delay, before it could hear
the answer (a sender killed mid-send), so a test can tell what the sender could have known
was delivered from what merely arrived. A request cut off before its whole body came (the
sender killed between headers and body) is not recorded: it never arrived. It answers with the status set by
``POST /_control {"status": 503, "delay": 0.5}`` (default 200, no delay); /_control requests
are not recorded. Prints "ready" once it listens. Standard library only.
"""

import argparse
import json
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTROL_PATH = "/_control"


class Receiver(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port, record):
        super().__init__(("127.0.0.1", port), Handler)
        self.record = record
        self.lock = threading.Lock()
        self.status = 200
        self.delay = 0.0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if len(raw) < length:
            # The client died between its headers and the end of its body: nothing arrived.
            self.close_connection = True
            return
        body = raw.decode("utf-8", errors="replace")
        server = self.server
        if self.path == CONTROL_PATH:
            settings = json.loads(body or "{}")
            server.status = int(settings.get("status", server.status))
            server.delay = float(settings.get("delay", server.delay))
            status, delay = 200, 0.0
            time.sleep(delay)
        else:
            status, delay = server.status, server.delay
            time.sleep(delay)
            answered = not self._client_gone()
            with server.lock, open(server.record, "a", encoding="utf-8") as record:
                record.write(json.dumps({"method": self.command, "path": self.path, "body": body,
                                         "answered": answered}) + "\n")
            if not answered:
                self.close_connection = True
                return
        answer = b"OK" if status < 400 else b"error"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def _client_gone(self):
        """True when the client closed its end: it sends nothing while it waits, so readable means EOF."""
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    do_GET = do_POST = do_HEAD = do_PUT = _handle


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", required=True)
    args = parser.parse_args()
    server = Receiver(args.port, args.record)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
