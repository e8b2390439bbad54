"""Hygiene over a whole owner's cycle: private files under umask 000, no secret anywhere, TLS always checked.

Also: an existing DATA_DIR keeps its mode (one open to others is refused), every runtime file is in
.gitignore, and the README and docs link only files that exist and hold no address but @example.com.

Covered elsewhere and not repeated: twenty launchers at once and a PID file naming a foreign
`sleep` (test_start_all_super_services.py, test_launcher.py), one command's files under umask 000
(test_manual_backup.py, test_store.py, test_runner.py), the token kept out of one command's output
(test_manual_backup.py, test_backup_status.py, test_auto_restore.py).
"""

import http.server
import json
import os
import re
import shutil
import ssl
import stat
import subprocess
import sys
import threading

import pytest
import requests

from helpers import PROJECT_DIR, command_env, make_settings, seed_shop
from service_helpers import FAST, figures, seeded_view, shop_by_owner, wait_for_figures, wait_until
from sleepguard.atomicfile import ensure_private_dir
from sleepguard.client import BackendClient
from sleepguard.exceptions import BackendError, SettingsError
from sleepguard.pins import read_restored_pins, restored_pins_path
from sleepguard.services import demo_folder_path

CANARY_TOKEN = "canary-token-d41c7e05b9"
# Long, odd PINs: a short one could turn up in a log by chance (a time, a port) and hide a real leak.
CANARY_PINS = [f"90{i}3178{i}64" for i in range(3)]
BACKUP, RESTORE = "auto_backup_super_aggressive", "auto_restore_service"
NEVER_IN_OUR_CODE = ("verify=False", "verify = False", "CERT_NONE", "_create_unverified_context",
                     "InsecureRequestWarning", "disable_warnings", "check_hostname = False", "check_hostname=False")


def run_loose(command, *args, env):
    """Run a command under umask 000, as a careless shell would; returns the CompletedProcess."""
    return subprocess.run([sys.executable, str(PROJECT_DIR / command), *args], cwd=PROJECT_DIR, env=env, umask=0,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


def keys_with_pin(value):
    """Every key in a JSON value whose name mentions a PIN."""
    if isinstance(value, dict):
        return {key for key in value if "pin" in key.lower()} | {k for v in value.values() for k in keys_with_pin(v)}
    if isinstance(value, list):
        return {k for item in value for k in keys_with_pin(item)}
    return set()


def test_a_whole_cycle_under_umask_000_leaves_only_private_files_and_no_secret(start_demo, tmp_path,
                                                                                stopped_afterwards):
    demo = start_demo(token=CANARY_TOKEN)
    shop = seed_shop(demo.url, users=3, customers=2, pin_of=lambda i: CANARY_PINS[i])
    emails = sorted(shop)
    pins_file = tmp_path / "owner-pins.json"
    pins_file.write_text(json.dumps({email: shop[email]["pin"] for email in emails[:2]}))
    pins_file.chmod(0o600)
    # Neither DATA_DIR nor its parent exist yet: the launcher creates both, under umask 000.
    created = tmp_path / "new-parent"
    data_dir = created / "data"
    env = command_env(data_dir, demo.url, **FAST, API_TOKEN=CANARY_TOKEN, PINS_FILE=pins_file, LOG_LEVEL="DEBUG")
    outputs = {}

    def command(label, script, *args, mode_env=env):
        result = run_loose(script, *args, env=mode_env)
        outputs[label] = result.stdout + result.stderr
        return result

    assert command("start", "start_all_super_services.py").returncode == 0, outputs["start"]
    wait_for_figures(data_dir, BACKUP, lambda f: f["good_count"] >= 1, 15, "a good backup")
    wait_for_figures(data_dir, RESTORE, lambda f: f["last_verdict"] == "unchanged", 15, "a check finding no wipe")
    demo.sleep_now()
    wait_for_figures(data_dir, RESTORE, lambda f: f["restores"] == 1, 15, "the restore")
    wait_until(lambda: shop_by_owner(demo.url) == seeded_view(shop), 5, "every customer back")
    assert command("manual backup", "manual_backup.py").returncode == 0, outputs["manual backup"]
    assert command("dry run", "restore_simple.py", "--dry-run").returncode == 0, outputs["dry run"]
    command("status", "backup_status.py")
    assert json.loads(command("status --json", "backup_status.py", "--json").stdout)["pins_to_hand_out"] == [emails[2]]
    assert command("list", "manual_backup.py", "--list").returncode == 0
    assert command("stop", "start_all_super_services.py", "--stop").returncode == 0, outputs["stop"]
    # Snapshot mode sends the token on every read: a backup, a dry run and the status with it.
    snapshot_env = {**env, "BACKEND_MODE": "snapshot"}
    assert command("snapshot backup", "manual_backup.py", mode_env=snapshot_env).returncode == 0
    assert command("snapshot dry run", "restore_simple.py", "--dry-run", mode_env=snapshot_env).returncode == 0
    command("snapshot status", "backup_status.py", "--json", mode_env=snapshot_env)

    paths = [created, *sorted(created.rglob("*"))]
    names = {str(path.relative_to(data_dir)) for path in paths[2:]}
    for expected in ("data_backup.json", "auto_backup_super_aggressive.log", "auto_restore.log",
                     "keep_alive_super_aggressive.log", "auto_restore_service.state.json", "restored_pins.json",
                     ".store.lock", ".launcher.lock", "auto_backups_super"):
        assert expected in names, f"the cycle left no {expected}: {sorted(names)}"
    assert not [name for name in names if name.endswith(".tmp")], "a temporary file was left behind"
    loose = [f"{path} {stat.S_IMODE(path.stat().st_mode):04o}" for path in paths
             if stat.S_IMODE(path.stat().st_mode) != (0o700 if path.is_dir() else 0o600)]
    assert not loose, "not private: " + ", ".join(loose)

    restored_pin = read_restored_pins(data_dir)[emails[2]]
    secrets = [CANARY_TOKEN, *CANARY_PINS, restored_pin]
    for label, text in outputs.items():
        assert not [secret for secret in secrets if secret in text], f"a secret reached the output of {label}"
    for path in paths:
        if path.is_file() and path != restored_pins_path(data_dir):
            data = path.read_bytes()
            assert not [s for s in secrets if s.encode() in data], f"a secret reached {path.relative_to(data_dir)}"
    assert CANARY_TOKEN not in restored_pins_path(data_dir).read_text()

    modes = set()
    for path in data_dir.rglob("*.json"):
        document = json.loads(path.read_bytes())
        if document.get("format") != "sleepguard-backup":
            continue
        modes.add(document["mode"])
        pin_keys = keys_with_pin(document["content"])
        if document["mode"] == "snapshot":
            assert pin_keys == {"pin_hash"}, f"{path.name} holds more than PIN hashes: {pin_keys}"
        else:
            assert pin_keys == set(), f"an API-mode backup {path.name} holds PIN fields: {pin_keys}"
    assert modes == {"babs10", "snapshot"}
    assert figures(data_dir, RESTORE)["restores"] == 1


# --- certificates are always checked ---

def test_our_code_never_turns_certificate_checks_off():
    sources = sorted((PROJECT_DIR / "sleepguard").glob("*.py")) + sorted(PROJECT_DIR.glob("*.py"))
    found = [f"{path.name}: {word}" for path in sources for word in NEVER_IN_OUR_CODE if word in path.read_text()]
    assert not found, f"certificate checks turned off: {found}"


class _Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"status": "healthy"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        """Silent."""


class _QuietTLSServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A refused handshake is the expected outcome, not news."""


@pytest.fixture
def self_signed_server(tmp_path):
    """An https server on loopback with a fresh self-signed certificate; yields (url, certificate path)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = _QuietTLSServer(("127.0.0.1", 0), _Healthy)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


def test_a_self_signed_certificate_is_refused(self_signed_server, data_dir, monkeypatch):
    url, cert = self_signed_server
    # requests lets these override even a session's verify=False: without them our own code alone decides.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    # The server itself is fine: trusting its certificate explicitly, the same request succeeds.
    assert requests.get(f"{url}/api/health", verify=str(cert), timeout=5).json() == {"status": "healthy"}
    with BackendClient(make_settings(data_dir, url, RETRIES="1")) as client:
        with pytest.raises(BackendError) as caught:
            client.health()
    assert "GET /api/health: TLS certificate check failed" == str(caught.value)


# --- DATA_DIR keeps the mode its owner gave it ---

@pytest.mark.parametrize("mode", [0o755, 0o750, 0o705, 0o700])
def test_an_existing_folder_keeps_its_mode(tmp_path, mode):
    folder = tmp_path / "checkout"
    folder.mkdir()
    folder.chmod(mode)
    assert ensure_private_dir(folder) == folder
    assert stat.S_IMODE(folder.stat().st_mode) == mode


def test_folders_sleepguard_makes_are_private_with_their_parents_even_under_umask_000(tmp_path):
    target = tmp_path / "a" / "b" / "data"
    old_umask = os.umask(0)
    try:
        ensure_private_dir(target)
    finally:
        os.umask(old_umask)
    assert [stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "a", tmp_path / "a" / "b", target)] == [0o700] * 3


@pytest.mark.parametrize("mode", [0o775, 0o1777, 0o722])
def test_a_folder_others_can_write_into_is_refused_and_left_as_it_is(tmp_path, mode):
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(mode)
    with pytest.raises(SettingsError, match=re.escape(f"folder {folder} is writable by")):
        ensure_private_dir(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == mode


def test_the_launcher_leaves_an_existing_data_dir_as_it_found_it(data_dir, stopped_afterwards):
    # The quick start runs in the checkout: 0755, and it must stay so.
    data_dir.chmod(0o755)
    result = subprocess.run([sys.executable, str(PROJECT_DIR / "start_all_super_services.py"), "--demo"],
                            cwd=PROJECT_DIR, env=command_env(data_dir, **FAST), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    # In demo mode the services' files are in the demo's folder.
    wait_for_figures(demo_folder_path(data_dir), BACKUP, lambda f: f["good_count"] >= 1, 15, "a good backup")
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o755
    loose = [f"{path.name} {stat.S_IMODE(path.stat().st_mode):04o}" for path in data_dir.rglob("*")
             if stat.S_IMODE(path.stat().st_mode) != (0o700 if path.is_dir() else 0o600)]
    assert not loose, "not private: " + ", ".join(loose)
    # The quick start's DATA_DIR is the checkout: nothing the services leave there may be committed by mistake.
    if shutil.which("git") is None or not (PROJECT_DIR / ".git").exists():
        pytest.skip("not a git checkout: cannot ask git what it ignores")
    names = sorted(str(path.relative_to(data_dir)) for path in data_dir.rglob("*") if path.is_file())
    assert ".launcher.lock" in names and "demo/data_backup.json" in names
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=PROJECT_DIR, capture_output=True,
                             text=True, timeout=30).stdout.splitlines()
    assert sorted(ignored) == names, f"not in .gitignore: {sorted(set(names) - set(ignored))}"


# --- the documents a newcomer reads point at files that exist ---

MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_every_relative_link_in_the_readme_and_docs_names_a_file_in_the_repository():
    documents = [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))]
    assert PROJECT_DIR / "docs" / "DESIGN.md" in documents and PROJECT_DIR / "docs" / "babs10-api.md" in documents
    readme_links = set(MARKDOWN_LINK.findall((PROJECT_DIR / "README.md").read_text()))
    assert {"docs/DESIGN.md", "docs/babs10-api.md"} <= readme_links
    broken = [f"{document.name}: {target}" for document in documents
              for target in MARKDOWN_LINK.findall(document.read_text())
              if "://" not in target and not target.startswith("mailto:") and not (document.parent / target).exists()]
    assert not broken, f"links to files not in the repository: {broken}"


def test_the_docs_hold_no_address_outside_example_domains():
    addresses = re.compile(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)")
    found = [f"{path.name}: {domain}" for path in [PROJECT_DIR / "README.md", *(PROJECT_DIR / "docs").glob("*.md")]
             for domain in addresses.findall(path.read_text())
             if domain.lower() not in ("example.com", "users.noreply.github.com")]
    assert not found, f"personal data never in the repository: use @example.com ({found})"
