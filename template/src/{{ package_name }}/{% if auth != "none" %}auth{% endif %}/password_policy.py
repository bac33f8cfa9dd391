"""Which passwords are accepted: length bounds, no common password, not the e-mail address.

Passwords are taken verbatim: no stripping, any character allowed. There are no
composition rules (NIST SP 800-63B): the most common passwords are refused instead.
"""

from functools import cache
from importlib.resources import files
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

PASSWORD_MIN_LENGTH = 8
# Bounds the work a single login or registration can ask of the hasher.
PASSWORD_MAX_LENGTH = 128


@cache
def common_passwords() -> frozenset[str]:
    """The most common passwords long enough to pass PASSWORD_MIN_LENGTH, casefolded.

    Read from a data file shipped in this package, once, by the first request that sets a
    password (not at start-up: reads never need it).
    """
    text = (files(__package__) / "common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(
        line.casefold() for line in text.splitlines() if line and not line.startswith("#")
    )


def is_email_or_its_local_part(password: str, email: str) -> bool:
    """Whether the password is the address, or its part before the @, in any case."""
    return password.casefold() in {email.casefold(), email.rpartition("@")[0].casefold()}


def _refuse_common_password(password: str) -> str:
    if password.casefold() in common_passwords():
        raise PydanticCustomError(
            "password_too_common",
            "This password is one of the most common ones: choose a less guessable one",
        )
    return password


# A new password: within the bounds, and not one of the most common ones (the first
# guesses of any attacker). Sign-up also refuses the e-mail address (`UserCreate`).
Password = Annotated[
    str,
    Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH),
    AfterValidator(_refuse_common_password),
]
