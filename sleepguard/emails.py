"""E-mail addresses in the form the BABS10 server stores them: pydantic v2's EmailStr, over email-validator.

The server lower-cases the domain and keeps the local part's case, so `Ama@Gmail.COM` is stored
as `Ama@gmail.com`; sleepguard compares and looks addresses up only in that form. The demo back
end uses the same rule, so the two can never drift apart.
"""

import re

import email_validator

# pydantic's validate_email: longer input is refused before email-validator sees it.
MAX_EMAIL_LENGTH = 2048
# pydantic's "pretty" address, `Name <a@b>`, `"Quoted Name" <a@b>` or `<a@b>`: only the address inside is kept.
_NAME_CHARACTER = r"[\w!#$%&'*+\-/=?^_`{|}~]"
PRETTY_EMAIL_RE = re.compile(
    rf"\s*(?:(?:{_NAME_CHARACTER}+\s+)*{_NAME_CHARACTER}+|\"(?:[^\"]|\\\")+\")?\s*<\s*(?P<address>.+)\s*>\s*")


class EmailRefused(ValueError):
    """The server would refuse this address (its 422), with email-validator's reason."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def normalise_email(value):
    """The address the server stores for value; EmailRefused with the reason when it would refuse it."""
    if len(value) > MAX_EMAIL_LENGTH:
        raise EmailRefused(f"Length must not exceed {MAX_EMAIL_LENGTH} characters")
    pretty = PRETTY_EMAIL_RE.fullmatch(value)
    if pretty:
        value = pretty.group("address")
    try:
        parts = email_validator.validate_email(value.strip(), check_deliverability=False)
    except email_validator.EmailNotValidError as error:
        raise EmailRefused(str(error.args[0])) from None
    return parts.normalized


def stored_form(value):
    """The stored form of an address, or the address as it is when the server would refuse it."""
    try:
        return normalise_email(value)
    except EmailRefused:
        return value
