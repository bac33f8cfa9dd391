from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AuthSettings(BaseSettings):
    """Settings of the auth domain, read from `AUTH_*` variables.

    The signing key is the application-wide `SECRET_KEY` (core settings).
    """

    model_config = SettingsConfigDict(env_prefix="AUTH_", env_file=".env", extra="ignore")

    access_token_expire_minutes: int = Field(default=15, ge=1)
    refresh_token_expire_days: int = Field(default=14, ge=1)

    # Argon2id costs (RFC 9106's second recommendation, above OWASP's minimum): about
    # 150 ms and 64 MiB per hash. Raising them re-hashes each password at its next login.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_cost: int = Field(default=64 * 1024, ge=8)  # KiB
    argon2_parallelism: int = Field(default=4, ge=1)
    # Hashes computed at once, per process: bounds memory (memory cost x this) and
    # keeps a burst of logins from starving the other worker threads.
    max_concurrent_hashes: int = Field(default=2, ge=1)


auth_settings = AuthSettings()
