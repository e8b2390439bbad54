"""The naive baseline, done the way the earlier scripts did it: one request at a time, a new connection for each.

Only its speed is compared. It is given one thing the earlier scripts lacked, so that its
restore leaves a usable back end for the next step: each customer in the flat list carries
its owner's e-mail (`owner`), costing no extra request.
"""

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

TIMEOUT = 30
# The earlier scripts backed up and checked for a wipe on a fixed two-minute schedule, keeping the last ten files.
SCHEDULE_SECONDS = 120
KEEP_FILES = 10


def _call(method, url, **kwargs):
    """One request on a fresh connection (requests.get/post open and close their own session)."""
    answer = requests.request(method, url, headers={"Connection": "close"}, timeout=TIMEOUT, **kwargs)
    return answer


def naive_backup(url, path):
    """GET the users, then each user's customers, sequentially; write one flat JSON file. Returns the counts."""
    users = _call("GET", f"{url}/api/users").json()
    customers = []
    for user in users:
        for customer in _call("GET", f"{url}/api/customers", params={"user_id": user["id"]}).json():
            customers.append({**customer, "owner": user["email"]})
    document = {"backup_created": datetime.now(timezone.utc).isoformat(), "backup_type": "naive_benchmark",
                "users": users, "customers": customers}
    path.write_text(json.dumps(document, indent=2))
    return {"users": len(users), "customers": len(customers)}


def naive_restore(url, path, pins):
    """POST each user, then each customer under its owner, sequentially. Returns (created, failed) counts."""
    document = json.loads(path.read_text())
    owner_ids, created, failed = {}, 0, 0
    for user in document["users"]:
        answer = _call("POST", f"{url}/api/users", json={"email": user["email"], "pin": pins[user["email"]]})
        if answer.status_code == 201:
            owner_ids[user["email"]] = answer.json()["id"]
            created += 1
        else:
            failed += 1
    for customer in document["customers"]:
        body = {key: customer[key] for key in ("name", "money_given", "total_spent", "orders")}
        answer = _call("POST", f"{url}/api/customers", params={"user_id": owner_ids.get(customer["owner"], "")},
                       json=body)
        if answer.status_code == 201:
            created += 1
        else:
            failed += 1
    return created, failed


def main():
    """As a whole process, the way the earlier backup script ran: naive.py backup URL PATH; prints the seconds."""
    _command, url, path = sys.argv[1:4]
    started = time.monotonic()
    counts = naive_backup(url, Path(path))
    print(json.dumps({**counts, "seconds": time.monotonic() - started}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
