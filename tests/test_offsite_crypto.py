"""age keys for off-site copies: a private identity file, refused when loose, and a recipient that must match it."""

import stat
import subprocess
import sys

import pytest

from helpers import PROJECT_DIR, make_settings
from offsite_helpers import new_identity
from sleepguard.exceptions import OffsiteError
from sleepguard.offsite_crypto import (check_recipient, decrypt, encrypt, keygen, load_identity,
                                       recipient_fingerprint)


def identity_settings(path, recipient=""):
    return make_settings(path.parent, OFFSITE_IDENTITY_FILE=str(path), OFFSITE_RECIPIENT=recipient)


def test_keygen_writes_a_private_standard_identity_file_and_never_overwrites_one(tmp_path):
    path = tmp_path / "keys" / "identity.txt"
    line = keygen(path)
    public = line.removeprefix("OFFSITE_RECIPIENT=")
    assert line.startswith("OFFSITE_RECIPIENT=age1") and len(public) == 62
    lines = path.read_text().splitlines()
    # The layout age-keygen writes: `age -d -i identity.txt` reads it as it is.
    assert lines[0].startswith("# created: ") and lines[1] == f"# public key: {public}"
    assert lines[2].startswith("AGE-SECRET-KEY-1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    before = path.read_bytes()
    with pytest.raises(OffsiteError, match="already exists"):
        keygen(path)
    assert path.read_bytes() == before


def test_a_copy_opens_only_with_its_identity(tmp_path):
    mine, recipient = new_identity(tmp_path)
    other, _other_recipient = new_identity(tmp_path, "other.txt")
    sealed = encrypt(b'{"shop": "data"}', recipient)
    assert sealed.startswith(b"age-encryption.org/v1\n") and b"shop" not in sealed
    assert decrypt(sealed, load_identity(identity_settings(mine))) == b'{"shop": "data"}'
    with pytest.raises(OffsiteError, match="cannot decrypt with this identity file"):
        decrypt(sealed, load_identity(identity_settings(other)))
    with pytest.raises(OffsiteError, match="cannot decrypt"):
        decrypt(sealed[:60], load_identity(identity_settings(mine)))


def test_a_loose_missing_or_malformed_identity_file_is_refused_in_one_line_that_never_shows_the_key(tmp_path):
    path, _recipient = new_identity(tmp_path)
    secret = path.read_text().splitlines()[-1]
    path.chmod(0o644)
    with pytest.raises(OffsiteError, match=r"open to others \(mode 0644\): chmod 600 it") as caught:
        load_identity(identity_settings(path))
    assert secret not in str(caught.value)
    with pytest.raises(OffsiteError, match="does not exist"):
        load_identity(identity_settings(tmp_path / "nowhere.txt"))
    with pytest.raises(OffsiteError, match="OFFSITE_IDENTITY_FILE is not set"):
        load_identity(make_settings(tmp_path))
    broken = tmp_path / "broken.txt"
    broken.write_text(secret[:-5] + "\n")
    broken.chmod(0o600)
    with pytest.raises(OffsiteError, match="damaged AGE-SECRET-KEY line") as caught:
        load_identity(identity_settings(broken))
    assert secret[:-5] not in str(caught.value)
    broken.write_text("# nothing here\n")
    with pytest.raises(OffsiteError, match="exactly one AGE-SECRET-KEY"):
        load_identity(identity_settings(broken))


def test_a_recipient_that_is_not_the_identity_s_public_key_is_refused(tmp_path):
    path, recipient = new_identity(tmp_path)
    _other, other_recipient = new_identity(tmp_path, "other.txt")
    identity = load_identity(identity_settings(path))
    check_recipient(identity_settings(path, recipient), identity)
    with pytest.raises(OffsiteError, match="is not the public key of OFFSITE_IDENTITY_FILE") as caught:
        check_recipient(identity_settings(path, other_recipient), identity)
    assert recipient_fingerprint(other_recipient) in str(caught.value)


@pytest.mark.parametrize("module, call, expected", [
    ("pyrage", "from sleepguard.offsite_crypto import encrypt; encrypt(b'x', 'age1')", "pip install pyrage"),
    ("minio", "from sleepguard.offsite_store import RemoteStore; from helpers import PROJECT_DIR, make_settings; "
              "RemoteStore(make_settings(PROJECT_DIR / 'tests', OFFSITE_URL='s3://shop-copies'))", "pip install minio"),
])
def test_a_missing_package_is_a_one_line_error_naming_what_to_install(module, call, expected):
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            f"from sleepguard.exceptions import OffsiteError\n"
            f"try:\n    {call}\nexcept OffsiteError as exc:\n    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True,
                            timeout=30, env={"PYTHONPATH": f"{PROJECT_DIR}:{PROJECT_DIR / 'tests'}"})
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert expected in result.stdout and len(result.stdout.strip().splitlines()) == 1
