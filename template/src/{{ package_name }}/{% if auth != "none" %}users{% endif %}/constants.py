from enum import StrEnum

EMAIL_MAX_LENGTH = 320
FULL_NAME_MAX_LENGTH = 200
# Fits any argon2 encoding (about 100 characters) and leaves room for other schemes.
HASHED_PASSWORD_MAX_LENGTH = 255
PASSWORD_MIN_LENGTH = 8
# Bounds the work a single login or registration can ask of the hasher.
PASSWORD_MAX_LENGTH = 128
ROLE_MAX_LENGTH = 16


class UserRole(StrEnum):
    USER = "user"
    ADMIN = "admin"
