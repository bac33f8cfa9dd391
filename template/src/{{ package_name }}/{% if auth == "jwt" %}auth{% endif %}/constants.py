JWT_ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "access"  # noqa: S105  # the `type` claim, not a credential
# Every claim an access token must carry; a token missing one is rejected.
ACCESS_TOKEN_CLAIMS = ["sub", "exp", "iat", "jti", "type"]
REFRESH_TOKEN_BYTES = 32
# User ids are positive 64-bit integers: anything else in `sub` is a forged token.
MAX_USER_ID = 2**63 - 1
