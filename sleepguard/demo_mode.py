"""Demo mode: when the launcher's demo back end runs for this DATA_DIR, the settings every command then uses.

The demo lives in DATA_DIR/demo (services.demo_folder_path): its back end's PID, URL, token and log,
and, as the services' DATA_DIR, every backup, log, state and PIN file of the demo. A command that finds
BACKEND_URL unset (or naming the demo) while that demo runs works on the demo there, and says so in
one line; a BACKEND_URL naming another back end is left alone here and refused by the launcher.
"""

import dataclasses
import logging
from pathlib import Path

from .exceptions import SettingsError
from .processes import running_demo_url
from .services import demo_folder_path, demo_token_path
from .settings import Settings, load_settings
from .urls import without_credentials

log = logging.getLogger(__name__)


def demo_token(folder: Path) -> str:
    """The demo's admin token as the launcher keeps it, or '' when there is none."""
    try:
        return demo_token_path(folder).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def demo_settings(settings: Settings, url: str) -> Settings:
    """settings pointed at the demo back end at url, with every file in the demo's folder.

    Nothing of a real shop's set-up follows it there: no alert, heartbeat or off-site copy is sent for
    demo data, and its PIN file and API token stay with the real shop.
    """
    folder = demo_folder_path(settings.data_dir)
    return dataclasses.replace(settings, backend_url=url, snapshot_url=f"{url}/api/admin/snapshot",
                               api_token=demo_token(folder), data_dir=folder, pins_file=folder / "pins.json",
                               alert_urls="", alert_config="", heartbeat_url="", offsite_url="")


def running_demo(settings: Settings) -> str | None:
    """The URL of the demo back end the launcher started for this DATA_DIR, if it runs."""
    return running_demo_url(demo_folder_path(settings.data_dir))


def uses_demo(settings: Settings, url: str | None) -> bool:
    """True when the commands should work on the running demo at url: BACKEND_URL is unset or names it."""
    return bool(url) and settings.backend_url in ("", url)


def with_running_demo(settings: Settings, quiet: bool = False) -> Settings:
    """The settings every command uses after load_settings: the running demo's when BACKEND_URL is unset or names it.

    Says so in one logged line (stderr for a command), unless quiet: the status screen says it itself. With
    BACKEND_URL naming another back end while the demo runs, it says which one it works on (unless quiet too:
    the status screen keeps stderr for a status it cannot compute).
    """
    url = running_demo(settings)
    if url and not uses_demo(settings, url) and not quiet:
        log.warning("BACKEND_URL is set: working on %s, not on the demo back end that runs at %s (unset BACKEND_URL "
                    "to use the demo)", without_credentials(settings.backend_url), url)
    if not uses_demo(settings, url):
        return settings
    if not quiet:
        log.warning("using the demo back end at %s (started with --demo; its files are in %s)", url,
                    demo_folder_path(settings.data_dir))
    return demo_settings(settings, url)


def load_settings_in_use(quiet: bool = False) -> Settings:
    """load_settings(), then with_running_demo(): what manual_backup, restore_simple and backup_status call."""
    return with_running_demo(load_settings(), quiet)


def refuse_mixing(settings: Settings, url: str | None, demo: bool) -> None:
    """Raise SettingsError when BACKEND_URL names another back end than the demo that runs or is asked for."""
    if not settings.backend_url or settings.backend_url == url:
        return
    other = without_credentials(settings.backend_url)
    if url:
        raise SettingsError(f"the demo back end runs at {url}, but BACKEND_URL is {other}: choose one: stop the "
                            f"demo first (start_all_super_services.py --stop), or unset BACKEND_URL to use the demo")
    if demo:
        raise SettingsError(f"--demo starts the bundled demo back end, but BACKEND_URL is {other}: choose one: "
                            f"unset BACKEND_URL to try the demo, or leave out --demo to use {other}")
