"""The cost curve: backup, judge, store and both restore modes at growing shop sizes, each step its own process.

Each step runs as `python3 benchmarks/curve.py STEP` with the settings in its environment, so its
peak memory (VmHWM) is its own; it prints {"seconds": ..., "peak_rss": ...}. The shop is put into
the demo back end whole (admin snapshot PUT), every owner with PIN 4000; the steps talk to the
demo directly (no latency proxy): the curve is about how the work grows, not the network.
"""

import json
import sys
import time
import uuid
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path[1:1] = [str(BENCH_DIR.parent), str(BENCH_DIR.parent / "tests")]

import bcrypt  # noqa: E402

STEPS = ("backup", "judge", "store", "restore_snapshot", "restore_api")
PIN = "4000"
STEP_TIMEOUT = 900
LOW_COST = 4


def synthetic_state(users, customers):
    """A demo snapshot of users × customers (one order each), all owners with PIN 4000 at a low bcrypt cost."""
    pin_hash = bcrypt.hashpw(PIN.encode(), bcrypt.gensalt(LOW_COST)).decode()
    state = {"users": [], "customers": []}
    for number in range(users):
        user_id = str(uuid.uuid4())
        moment = f"2026-11-01T{number // 3600 % 24:02d}:{number // 60 % 60:02d}:{number % 60:02d}.000000"
        state["users"].append({"id": user_id, "email": f"owner{number}@example.com", "pin_hash": pin_hash,
                               "created_at": moment, "updated_at": moment})
        for index in range(customers):
            state["customers"].append({
                "id": str(uuid.uuid4()), "user_id": user_id, "name": f"Customer {index} of owner{number}",
                "money_given": 10.5 * index, "total_spent": 3.25 * index,
                "orders": [{"id": f"order-{index}", "orderRef": "", "orderDate": "2025-08-21",
                            "items": [{"desc": f"Item {index}", "qty": "1", "color": "", "size": "", "price": "60.94"}],
                            "comments": "", "savedAt": "8/21/2025, 2:23:11 AM"}],
                "created_at": moment, "updated_at": moment})
    return state


def peak_rss():
    """This process's VmHWM in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def run_step(step):
    """One step in this process, timed from after the imports: the seconds it took."""
    from sleepguard.apply import restore_now
    from sleepguard.backup import take_backup
    from sleepguard.client import BackendClient
    from sleepguard.settings import load_settings
    from sleepguard.store import BackupStore
    from sleepguard.wipe import judge_read

    settings = load_settings()
    with BackendClient(settings) as client:
        if step == "backup":
            started = time.monotonic()
            outcome = take_backup(settings, client)
            if outcome.kind != "good":
                raise SystemExit(f"backup was {outcome.kind}: {outcome.reason}")
            return time.monotonic() - started
        store = BackupStore(settings)
        backup = store.latest_good_backup()
        if step in ("judge", "store"):
            current = client.read_snapshot()
            started = time.monotonic()
            if step == "judge":
                judge_read(current, backup, settings.large_drop_fraction)
            else:
                store.record(current)
            return time.monotonic() - started
        started = time.monotonic()
        report = restore_now(settings, backup, client)
        if not report.complete:
            raise SystemExit(f"{step} is not complete: {report.missing[:3]}")
        return time.monotonic() - started


def main():
    step = sys.argv[1]
    seconds = run_step(step)
    print(json.dumps({"seconds": seconds, "peak_rss": peak_rss()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
