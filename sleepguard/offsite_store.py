"""The S3-compatible bucket the off-site copies live in, through minio-py with our timeouts and retries.

minio-py was chosen by measurement over boto3: in a process that has requests imported it adds
about 7 MB of RSS/PSS against boto3's 26 MB, and starts faster; against moto's server both
behave alike. It reads no AWS_* variable by itself, so credentials are handed to it here, the
standard AWS way: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN) from the
environment or .env (python-dotenv's values are not exported), else AWS_PROFILE from
~/.aws/credentials. They are never logged or put in a message.
"""

import io
import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

from .exceptions import OffsiteError
from .offsite import location
from .settings import DEFAULT_ENV_FILE

log = logging.getLogger(__name__)

AWS_ENDPOINT = "s3.amazonaws.com"
DEFAULT_REGION = "us-east-1"
# S3 error codes meaning: these credentials are not accepted.
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
                     "InvalidSecurity", "AuthorizationHeaderMalformed", "InvalidClientTokenId"}
_REFUSED_CODES = {"AccessDenied", "AllAccessDisabled", "AccountProblem"}
_FULL_CODES = {"QuotaExceeded", "EntityTooLarge", "StorageFull", "ServiceUnavailable", "SlowDown"}


def _minio():
    """The minio module, imported only when off-site copies are used; a one-line error when missing."""
    try:
        import minio
        import minio.credentials
        import minio.error
    except ImportError:
        raise OffsiteError("off-site copies need the minio package: pip install minio") from None
    return minio


def aws_values(environ=None):
    """The AWS_* values from the environment, then from .env beside the commands (ENV_FILE), as load_settings does."""
    environ = os.environ if environ is None else environ
    env_file = Path(environ.get("ENV_FILE") or DEFAULT_ENV_FILE)
    from_file = dotenv_values(env_file) if env_file.is_file() else {}
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
             "AWS_DEFAULT_REGION", "AWS_SHARED_CREDENTIALS_FILE")
    return {name: (environ.get(name) or from_file.get(name) or "").strip() for name in names}


def _credentials(minio, values):
    """A minio credentials provider for the values; OffsiteError when there are none."""
    providers = minio.credentials
    if values["AWS_ACCESS_KEY_ID"] or values["AWS_SECRET_ACCESS_KEY"]:
        if not (values["AWS_ACCESS_KEY_ID"] and values["AWS_SECRET_ACCESS_KEY"]):
            raise OffsiteError("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for the off-site store")
        return providers.StaticProvider(values["AWS_ACCESS_KEY_ID"], values["AWS_SECRET_ACCESS_KEY"],
                                        values["AWS_SESSION_TOKEN"] or None)
    shared = Path(values["AWS_SHARED_CREDENTIALS_FILE"] or Path.home() / ".aws" / "credentials").expanduser()
    if values["AWS_PROFILE"] or shared.is_file():
        if not shared.is_file():
            raise OffsiteError(f"AWS_PROFILE is set but {shared} does not exist")
        return providers.AWSConfigProvider(str(shared), values["AWS_PROFILE"] or None)
    raise OffsiteError("no credentials for the off-site store: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                       "(in .env or the environment) or AWS_PROFILE")


def _http_client(settings):
    """minio's urllib3 pool with our bounded timeouts and retries (its own default: 300 s and 5 retries)."""
    import urllib3
    # Every call we make is idempotent (a write-once name rewritten with the same bytes, reads, deletes).
    retry = urllib3.Retry(total=settings.retries, connect=settings.retries, read=settings.retries,
                          backoff_factor=settings.retry_backoff, status_forcelist=(500, 502, 503, 504),
                          allowed_methods=None, raise_on_status=False, respect_retry_after_header=False)
    return urllib3.PoolManager(timeout=urllib3.Timeout(connect=settings.connect_timeout, read=settings.read_timeout),
                               retries=retry, maxsize=2, cert_reqs="CERT_REQUIRED")


class RemoteStore:
    """Our copies under OFFSITE_URL: put, get, list and delete by name; every failure is one OffsiteError line."""

    def __init__(self, settings, environ=None):
        minio = _minio()
        self._errors = minio.error
        self.location = location(settings)
        values = aws_values(environ)
        endpoint = urlsplit(settings.offsite_endpoint_url) if settings.offsite_endpoint_url else None
        self.where = endpoint.netloc if endpoint else AWS_ENDPOINT
        region = values["AWS_REGION"] or values["AWS_DEFAULT_REGION"] or DEFAULT_REGION
        credentials = _credentials(minio, values)
        try:
            # Given a region, minio asks the store nothing before the first real call.
            self._client = minio.Minio(self.where, secure=endpoint is None or endpoint.scheme == "https",
                                       region=region, credentials=credentials, http_client=_http_client(settings))
        except ValueError as exc:
            raise OffsiteError(f"OFFSITE_ENDPOINT_URL is not an address the S3 client accepts: {exc}") from None

    def _call(self, what, function, *args, **kwargs):
        """Run one client call, turning every failure into an OffsiteError that names no secret."""
        import urllib3
        try:
            return function(*args, **kwargs)
        except self._errors.S3Error as exc:
            raise OffsiteError(f"{what}: {self._s3_reason(exc.code)}") from None
        except self._errors.ServerError as exc:
            raise OffsiteError(f"{what}: the off-site store {self.where} answered HTTP {exc.status_code}") from None
        except self._errors.InvalidResponseError as exc:
            # A page from a proxy or a host in front of the store, not S3's XML: its status says enough.
            raise OffsiteError(f"{what}: the off-site store {self.where} answered HTTP {getattr(exc, '_code', '?')} "
                               "with a page that is not S3's") from None
        except ValueError as exc:
            # minio checks names itself (bucket names more strictly than S3's own rules).
            raise OffsiteError(f"{what}: {exc}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            reason = type(getattr(exc, "reason", None) or exc).__name__
            raise OffsiteError(f"{what}: cannot reach the off-site store {self.where} ({reason})") from None

    def _s3_reason(self, code):
        bucket = self.location.bucket
        if code == "NoSuchBucket":
            return f"the bucket {bucket} does not exist at {self.where}: create it, or correct OFFSITE_URL"
        if code in _CREDENTIAL_CODES:
            return (f"the off-site store refused our credentials ({code}): check AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY")
        if code in _REFUSED_CODES:
            return f"the off-site store refused this ({code}): the key needs read, write, list and delete on {bucket}"
        if code in _FULL_CODES:
            return f"the off-site store refused the write ({code}): full or over its quota?"
        return f"the off-site store answered {code}"

    def names(self):
        """Every name directly under our prefix (ours or not: the caller picks by pattern)."""
        prefix = self.location.key("")
        objects = self._call("listing the copies", lambda: list(self._client.list_objects(
            self.location.bucket, prefix=prefix or None)))
        found = (self.location.name(item.object_name) for item in objects if not item.is_dir)
        return [name for name in found if name]

    def put(self, name, data):
        """Write an object whole (S3 shows an object only once all of it arrived); no metadata of ours."""
        self._call(f"uploading {name}", self._client.put_object, self.location.bucket, self.location.key(name),
                   io.BytesIO(data), len(data), content_type="application/octet-stream")

    def get(self, name, max_bytes):
        """An object's bytes, None when there is no such object; OffsiteError when over max_bytes or unreachable."""
        def read():
            try:
                response = self._client.get_object(self.location.bucket, self.location.key(name))
            except self._errors.S3Error as exc:
                if exc.code == "NoSuchKey":
                    return None
                raise
            try:
                return response.read(max_bytes + 1)
            finally:
                response.close()
                response.release_conn()
        data = self._call(f"downloading {name}", read)
        if data is not None and len(data) > max_bytes:
            raise OffsiteError(f"{name} is over {max_bytes} bytes: not one of our copies")
        return data

    def delete(self, name):
        """Remove one object."""
        self._call(f"deleting {name}", self._client.remove_object, self.location.bucket, self.location.key(name))
