"""What may leave the machine in an alert or a heartbeat: masked e-mails, URL labels, no secret."""

import hashlib
import logging
import re
from urllib.parse import urlsplit

# An address not already masked: no word character, dot or * right before its local part.
EMAIL = re.compile(r"(?<![\w.%+*-])([\w.%+-]+)@((?:[\w-]+\.)+[\w-]{2,})")
# Any scheme://... token: alerts name no URL, only its label.
URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
# A PIN written as digits after the word: "PIN 4821", "pin: 004821", "PINs = 1234".
PIN = re.compile(r"(?i)(\bpins?\b\W{0,3})\d{3,}")
# Any address, masked ones too: the heartbeat's body names none at all.
ANY_EMAIL = re.compile(r"[\w.%+*-]+@(?:[\w-]+\.)+[\w-]{2,}")
# A host or path part of an alert URL is taken as a secret (a topic, a token) when it is this long, or
# shorter down to MIN_TOKEN_PART with a digit or capital in it; a domain (with a dot) or a plain short
# word is not, so that "backups" in a text survives an ntfy topic of that name.
MIN_SECRET_PART = 10
MIN_TOKEN_PART = 6
HIDDEN = "***"


def mask_email(address):
    """A***a@example.com for Ama-Sofia@example.com: enough for the owner to know who, not enough to write to."""
    local, _, domain = address.rpartition("@")
    if not local:
        return HIDDEN
    tail = local[-1] if len(local) > 1 else ""
    return f"{local[0]}{HIDDEN}{tail}@{domain}"


def fingerprint(url):
    """Four hex digits that tell two URLs apart without revealing either."""
    return url_key(url)[:4]


def url_key(url):
    """A stable key of a URL for tracking deliveries; a hash, so the file holding it holds no URL."""
    return hashlib.sha256(url.strip().encode("utf-8")).hexdigest()[:16]


def describe_url(url):
    """The only way a secret URL is ever shown: its service (scheme) and fingerprint, e.g. 'ntfy (3f2a)'."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else "url"
    return f"{scheme} ({fingerprint(url)})"


def url_secrets(url):
    """The parts of a URL that may be secret: the URL, its password, and token-like host or path parts."""
    found = [url]
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        # An apprise URL such as tgram://123:ABC/… is no valid host:port: take its pieces by hand.
        parts, password = None, None
    rest = url.split("://", 1)[-1]
    userinfo, _, hostpath = rest.rpartition("@")
    if password is None and ":" in userinfo:
        password = userinfo.split(":", 1)[1]
    if password:
        found.append(password)
    pieces = re.split(r"[/?#&=]", hostpath)
    if parts is not None and parts.username and "." not in parts.username:
        pieces.append(parts.username)
    found.extend(piece for piece in pieces if _token_like(piece))
    return found


def _token_like(piece):
    if "." in piece or len(piece) < MIN_TOKEN_PART:
        return False
    return len(piece) >= MIN_SECRET_PART or not piece.isalpha() or not piece.islower()


def settings_secrets(settings):
    """Every secret the settings hold, for scrub(): the token, alert and heartbeat URLs, URL passwords."""
    found = [settings.api_token] if settings.api_token else []
    for url in [*settings.alert_urls.split(), settings.heartbeat_url]:
        if url:
            found.extend(url_secrets(url))
    # The back end's own URLs: only the password is secret; their path words ("snapshot") are not.
    for url in (settings.backend_url, settings.snapshot_url):
        if url:
            found.append(url)
            try:
                found.append(urlsplit(url).password or "")
            except ValueError:
                continue
    return found


def scrub(text, secrets=(), emails="mask"):
    """The one gate text passes before it leaves: no URL, PIN, known secret, and e-mails masked or dropped."""
    # Longest first, so a secret that contains another is hidden whole.
    for secret in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, HIDDEN)
    text = URL.sub(lambda match: describe_url(match.group(0)), text)
    text = PIN.sub(lambda match: match.group(1) + HIDDEN, text)
    if emails == "drop":
        return ANY_EMAIL.sub("a user", text)
    return EMAIL.sub(lambda match: mask_email(match.group(0)), text)


class ScrubFilter(logging.Filter):
    """Passes a logger's lines through scrub(): for libraries that quote the URLs they call (apprise, urllib3)."""

    def __init__(self, secrets):
        super().__init__()
        self.secrets = tuple(secrets)

    def filter(self, record):
        record.msg, record.args = scrub(record.getMessage(), self.secrets), None
        return True


def guard_logger(name, secrets):
    """Put one ScrubFilter with these secrets on the named logger (replacing an earlier one).

    A logger's filter sees only the lines logged to that very logger, so name the one that logs.
    """
    logger = logging.getLogger(name)
    for old in [f for f in logger.filters if isinstance(f, ScrubFilter)]:
        logger.removeFilter(old)
    logger.addFilter(ScrubFilter(secrets))
