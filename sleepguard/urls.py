"""Back-end URLs as sleepguard shows and compares them: never with a user:password part."""

from urllib.parse import urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def without_credentials(url):
    """The URL with any user:password part removed: it may hold a secret, and files and screens show URLs."""
    if not url:
        return url
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, parts.fragment))


def backend_identity(url):
    """What makes two back-end URLs the same back end: scheme, host (any case), port (default filled), path."""
    parts = urlsplit(url or "")
    scheme = parts.scheme.lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/")


def same_backend(first, second):
    """True when two URLs name one back end, ignoring credentials, a trailing slash, host case and the default port."""
    return backend_identity(first) == backend_identity(second)
