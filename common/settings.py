"""Settings base for every app.

Each app subclasses :class:`AppSettings` with its own env prefix (``CATALOG_``, ``ORDERS_``,
``NOTIFY_``, ``GATEWAY_``). Settings shared by all apps and named without a prefix in the design
(``ENVIRONMENT``, ``EVENT_BUS_URL``, ``SMTP_URL``) are fields declared with :func:`unprefixed`;
``LOG_FORMAT`` and ``LOG_LEVEL`` are read by :class:`SharedSettings` before an app's own settings.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]

# Values that ship in the code so that `make run` works with no configuration. Outside
# development any secret still holding one of them (or anything this short) is refused.
DEV_SECRET_PREFIX = "dev-insecure-"
MIN_SECRET_LENGTH = 32


class SharedSettings(BaseSettings):
    """Logging settings every app reads under the same, unprefixed name."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"


def unprefixed(name: str, default, **kwargs):
    """A field read from ``NAME`` whatever the class's env prefix (for settings shared by all apps)."""
    return Field(default, validation_alias=AliasChoices(name), **kwargs)


class AppSettings(BaseSettings):
    """Base of each app's settings. Subclasses set ``env_prefix`` and their defaults."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "app"

    environment: Environment = unprefixed("ENVIRONMENT", "development")
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = ""
    # The marketplace's public address (the gateway's): pages and problem types are made on it.
    public_base_url: str = "http://localhost:8000"
    # Credential that services present to each other's /internal/* (X-Service-Token); one value
    # shared by every app of a deployment.
    service_token: SecretStr = unprefixed("SERVICE_TOKEN",
                                          SecretStr(DEV_SECRET_PREFIX + "service-token-change-me-000000"))
    # Public keys that verify access tokens (base64url, comma-separated). Empty in development:
    # the key pair under var/keys/ is used.
    jwt_public_key: str = unprefixed("JWT_PUBLIC_KEY", "")

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable a field is read from."""
        alias = cls.model_fields[field].validation_alias
        if isinstance(alias, AliasChoices):
            return str(alias.choices[0])
        return f"{cls.model_config.get('env_prefix', '')}{field.upper()}"

    @model_validator(mode="after")
    def _refuse_insecure_secrets(self) -> AppSettings:
        if self.environment == "development":
            return self
        if not self.jwt_public_key.strip():
            raise ValueError(f"JWT_PUBLIC_KEY must be set when ENVIRONMENT={self.environment}")
        insecure = []
        for name, value in self:
            if not isinstance(value, SecretStr):
                continue
            secret = value.get_secret_value()
            if secret.startswith(DEV_SECRET_PREFIX) or len(secret) < MIN_SECRET_LENGTH:
                insecure.append(self.env_name(name))
        if insecure:
            raise ValueError(
                f"{', '.join(insecure)}: a development default or shorter than {MIN_SECRET_LENGTH} "
                f"characters; set real secrets when ENVIRONMENT={self.environment}"
            )
        return self
