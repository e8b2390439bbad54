"""Helpers of the off-site tests: settings pointing at a moto server, an age key pair, backups to copy."""

import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

from helpers import free_port, make_settings
from sleepguard.offsite_crypto import keygen
from sleepguard.snapshot import Snapshot
from sleepguard.store import BackupStore

PREFIX = "sleepguard/shop"
SHOP_EMAILS = ("ama.owner@example.com", "kofi.helper@example.com")
EPOCH = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)


def new_identity(folder, name="identity.txt"):
    """Write an age identity file; returns (path, its age1... public key)."""
    path = folder / name
    line = keygen(path)
    return path, line.split("=", 1)[1]


def offsite_settings(data_dir, s3, recipient, identity_file="", endpoint=None, **overrides):
    """Test settings with off-site copies to s3's bucket (through endpoint if given), fast timeouts, few retries."""
    values = {"OFFSITE_URL": f"s3://{s3.bucket}/{PREFIX}", "OFFSITE_ENDPOINT_URL": endpoint or s3.url,
              "OFFSITE_RECIPIENT": recipient, "OFFSITE_IDENTITY_FILE": identity_file, "READ_TIMEOUT": "2",
              "CONNECT_TIMEOUT": "1", "RETRIES": "1", "RETRY_BACKOFF": "0.01"}
    return make_settings(data_dir, **{**values, **overrides})


def shop_snapshot(customers, created_at):
    """A read of a shop whose first owner has `customers` customers, taken at created_at."""
    stamp = created_at.isoformat().replace("+00:00", "")
    users = [{"id": f"user-{i}", "email": email, "created_at": "2026-11-01T08:00:00.000001",
              "updated_at": "2026-11-01T08:00:00.000002", "customers": []} for i, email in enumerate(SHOP_EMAILS)]
    users[0]["customers"] = [{"id": f"cust-{j}", "name": f"Customer {j} Mensah", "money_given": 10.0 * j,
                              "total_spent": 2.5, "orders": [{"id": f"o{j}", "items": [{"desc": "Kente", "qty": "1"}]}],
                              "created_at": stamp, "updated_at": stamp} for j in range(customers)]
    return Snapshot(users=users, meta={"created_at": created_at.isoformat().replace("+00:00", "Z"),
                                       "backend_url": "http://shop:S3cretPW@127.0.0.1:8000", "mode": "babs10",
                                       "duration_seconds": 0.01})


def record_backups(settings, count, start=EPOCH, step=timedelta(minutes=7)):
    """Record count good backups, each with one more customer, step apart; returns their history paths."""
    store = BackupStore(settings)
    paths = []
    for n in range(count):
        outcome = store.record(shop_snapshot(n + 1, start + n * step))
        assert outcome.kind == "good", outcome.reason
        paths.append(outcome.path)
    return paths


def write_pins(path, pins):
    path.write_text(json.dumps(pins))
    path.chmod(0o600)
    return path


def bucket_objects(s3, prefix=""):
    """{key: (bytes, metadata)} of every object in the bucket."""
    client, bucket = s3.client(), s3.bucket
    found = {}
    for item in client.list_objects(bucket, prefix=prefix or None, recursive=True):
        response = client.get_object(bucket, item.object_name)
        try:
            data = response.read()
        finally:
            response.close()
            response.release_conn()
        found[item.object_name] = (data, dict(client.stat_object(bucket, item.object_name).metadata))
    return found


MOTO_KEY_ID, MOTO_SECRET = "AKIAEXAMPLETESTKEY01", "example-secret-key-for-moto-only"
MOTO_STARTUP_DEADLINE = 20


def _wait_for_port(port, seconds, process):
    """True once something accepts connections on 127.0.0.1:port; False at the deadline or if process ended."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class MotoServer:
    """moto's server (`python3 -m moto.server`) on a free loopback port; `url` is its endpoint."""

    def __init__(self, env=None):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                        env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not _wait_for_port(port, MOTO_STARTUP_DEADLINE, self.process):
            self.stop()
            raise RuntimeError("moto's server did not start")

    def client(self, key_id=MOTO_KEY_ID, secret=MOTO_SECRET):
        """A minio client straight to the server, for a test to look at or change the bucket."""
        from minio import Minio
        return Minio(self.url.removeprefix("http://"), access_key=key_id, secret_key=secret, secure=False,
                     region="us-east-1")

    def stop(self):
        # moto keeps everything in memory: nothing to lose by killing it outright.
        self.process.kill()
        self.process.wait(5)


class MotoBucket:
    """A fresh bucket of the shared moto server: `url` the endpoint, `bucket` its name."""

    def __init__(self, server, bucket):
        self.server, self.url, self.bucket = server, server.url, bucket

    def client(self, *args):
        return self.server.client(*args)
