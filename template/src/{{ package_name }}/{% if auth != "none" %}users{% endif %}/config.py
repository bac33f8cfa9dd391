from pydantic_settings import BaseSettings, SettingsConfigDict


class UsersSettings(BaseSettings):
    """Settings of the users domain, read from `USERS_*` variables."""

    model_config = SettingsConfigDict(env_prefix="USERS_", env_file=".env", extra="ignore")

    # Self-service sign-up through POST /auth/register; admins can always be created
    # with the `create-admin` command.
    allow_registration: bool = True


users_settings = UsersSettings()
