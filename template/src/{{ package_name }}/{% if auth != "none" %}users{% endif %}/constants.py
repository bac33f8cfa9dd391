from enum import StrEnum
from importlib.resources import files

EMAIL_MAX_LENGTH = 320
FULL_NAME_MAX_LENGTH = 200
# Fits any argon2 encoding (about 100 characters) and leaves room for other schemes.
HASHED_PASSWORD_MAX_LENGTH = 255
PASSWORD_MIN_LENGTH = 8
# Bounds the work a single login or registration can ask of the hasher.
PASSWORD_MAX_LENGTH = 128
# The most common passwords long enough to pass PASSWORD_MIN_LENGTH, refused whatever
# their case: read once, from a data file shipped in this package.
_COMMON_PASSWORDS_FILE = files(__package__) / "common_passwords.txt"
COMMON_PASSWORDS = frozenset(
    line.casefold()
    for line in _COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    if line and not line.startswith("#")
)
ROLE_MAX_LENGTH = 16


class UserRole(StrEnum):
    USER = "user"
    ADMIN = "admin"
