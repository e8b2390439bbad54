"""The README's "Try it: the demo" runs as written, in a fresh copy of the checkout, with the outcomes it states.

How the README states an outcome, so this test can check it (keep to it when you edit that section):
- Every line of a ```sh block in the section is a command, run by bash in the copy's folder, in order,
  except blank lines, comment lines, install lines (`python3 -m venv`, `pip install`) and `tail -F`
  lines (a second terminal's).
- A comment after a command starts with two spaces and `# `. Each `text` in backticks in it means: the
  command's output (stdout and stderr) contains text. Every command must also exit 0.
- "(within N s)" in the comment means: re-run the command until its outcome holds, at most N s after the
  previous command ended; only idempotent commands may say so (IDEMPOTENT below). That deadline is
  the time the README promises, so it is what this test measures.

The copy is made of the tracked files (`git ls-files`, as a fresh clone holds them) with `.venv/bin/python`
pointing at this interpreter; the demo takes a free port of its own, as the launcher's --demo always does.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import PROJECT_DIR
from service_helpers import processes_of
from sleepguard.services import demo_folder_path
from sleepguard.settings import SETTINGS

SECTION = "## Try it: the demo"
SKIPPED = re.compile(r"python3 -m venv|pip install|tail -F")
WITHIN = re.compile(r"\(within (\d+(?:\.\d+)?) s\)")
IDEMPOTENT = re.compile(r"^(\.venv/bin/python (backup_status\.py|restore_simple\.py --dry-run|manual_backup\.py --list)"
                        r"|curl \"|grep |cat )")
POLL_SECONDS = 0.5
COMMAND_TIMEOUT = 60


def demo_steps(readme: str) -> list[tuple[str, list[str], float | None]]:
    """(command, texts its output must contain, seconds it may take to get there or None) of the section."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start:end if end != -1 else None]
    steps = []
    for block in re.findall(r"^```sh\n(.*?)^```", section, flags=re.S | re.M):
        for line in block.splitlines():
            if not line.strip() or line.lstrip().startswith("#") or SKIPPED.search(line):
                continue
            command, _, comment = line.partition("  # ")
            within = WITHIN.search(comment)
            steps.append((command.strip(), re.findall(r"`([^`]+)`", comment),
                          float(within.group(1)) if within else None))
    return steps


def fresh_checkout(target: Path) -> Path:
    """The tracked files copied into target, with .venv/bin/python running this very interpreter."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_DIR, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = PROJECT_DIR / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    target.chmod(0o700)
    if sys.prefix != sys.base_prefix:
        (target / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    else:
        (target / ".venv" / "bin").mkdir(parents=True)
        (target / ".venv" / "bin" / "python").symlink_to(sys.executable)
    return target


def run(command: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=COMMAND_TIMEOUT)


def holds(result: subprocess.CompletedProcess, texts: list[str]) -> bool:
    return result.returncode == 0 and all(text in result.stdout + result.stderr for text in texts)


def test_the_sections_outcomes_follow_the_convention():
    steps = demo_steps((PROJECT_DIR / "README.md").read_text())
    assert len(steps) >= 10, steps
    assert any("/api/admin/sleep" in command for command, _, _ in steps), "the walk-through lost its sleep call"
    assert sum(texts != [] for _, texts, _ in steps) >= 8, "most commands state their outcome"
    polled = [command for command, _, within in steps if within is not None]
    assert polled and all(IDEMPOTENT.match(command) and " -X " not in command and " -d " not in command
                          for command in polled), f"only idempotent commands may be re-run: {polled}"


@pytest.fixture
def checkout(tmp_path):
    """A fresh copy of the checkout; whatever the README started there is stopped afterwards."""
    copy = fresh_checkout(tmp_path / "checkout")
    yield copy
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS}
    subprocess.run([sys.executable, "start_all_super_services.py", "--stop"], cwd=copy, env=env,
                   capture_output=True, timeout=COMMAND_TIMEOUT)
    leftovers = processes_of(copy) + processes_of(demo_folder_path(copy))
    for process in leftovers:
        process.kill()
    assert not leftovers, f"processes left running: {leftovers}"


def test_the_demo_walk_through_runs_as_written_with_the_outcomes_it_states(checkout):
    # As a new user's shell has it: none of our settings, no demo token (the demo makes its own).
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS and key != "DEMO_API_TOKEN"}
    steps = demo_steps((checkout / "README.md").read_text())
    previous_end = time.monotonic()
    for command, texts, within in steps:
        result = run(command, checkout, env)
        if within is not None:
            deadline = previous_end + within
            while not holds(result, texts) and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
                result = run(command, checkout, env)
        said = f"$ {command}\n(exit {result.returncode})\n{result.stdout}{result.stderr}"
        assert result.returncode == 0, said
        for text in texts:
            assert text in result.stdout + result.stderr, \
                f"the README says the output holds {text!r}" + (f" within {within:g} s" if within else "") + f":\n{said}"
        previous_end = time.monotonic()
