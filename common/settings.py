"""Settings base for every app.

Each app subclasses :class:`AppSettings` with its own env prefix (``CATALOG_``, ``ORDERS_``,
``NOTIFY_``, ``GATEWAY_``). Settings shared by all apps and named without a prefix in the design
(``ENVIRONMENT``, ``SERVICE_TOKEN``, ``EVENT_BUS_URL``, ``SMTP_URL``) are fields declared with
:func:`unprefixed`, and are read under that one name only (never ``ORDERS_SERVICE_TOKEN`` as well);
``LOG_FORMAT``, ``LOG_LEVEL`` and ``SECRETS_DIR`` are read by :class:`SharedSettings`.

Where a value comes from, first found wins: the environment, then ``.env``, then a file in
``SECRETS_DIR`` named as the variable (``/run/secrets/SERVICE_TOKEN``: how compose and Kubernetes
mount secrets), then the default. Secrets that are rotated (data keys, the JWT signing key) are
comma-separated lists: the first one encrypts or signs, all of them decrypt or verify.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

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
    # A folder of files named as the settings (SERVICE_TOKEN, CATALOG_DATA_KEY…), one value each: how
    # compose (/run/secrets) and Kubernetes mount secrets. A variable set in the environment wins.
    secrets_dir: str = ""


def secret_list(value: SecretStr | str) -> list[str]:
    """A rotated secret's values, newest first: ``new,old`` → ``["new", "old"]``."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    return [part.strip() for part in text.split(",") if part.strip()]


def unprefixed(name: str, default, **kwargs):
    """A field read from ``NAME`` whatever the class's env prefix (for settings shared by all apps)."""
    return Field(default, validation_alias=AliasChoices(name), **kwargs)


def _alias(field: FieldInfo) -> str | None:
    alias = field.validation_alias
    return str(alias.choices[0]) if isinstance(alias, AliasChoices) else None


class _OneName:
    """pydantic-settings reads an aliased field under its alias *and*, because the model populates
    fields by name, under ``<prefix><field>`` too (``ORDERS_SERVICE_TOKEN`` beside ``SERVICE_TOKEN``):
    two names for one setting, which gave each app its own service token. Only the alias counts here."""

    def _extract_field_info(self, field: FieldInfo, field_name: str, *args: Any) -> list[tuple[str, str, bool]]:
        found = super()._extract_field_info(field, field_name, *args)  # type: ignore[misc]
        alias = _alias(field)
        if alias is None:
            return found
        return [entry for entry in found if entry[1].lower() == alias.lower()]


class _Env(_OneName, EnvSettingsSource):
    pass


class _DotEnv(_OneName, DotEnvSettingsSource):
    pass


class _SecretFiles(_OneName, SecretsSettingsSource):
    pass


class AppSettings(BaseSettings):
    """Base of each app's settings. Subclasses set ``env_prefix`` (pydantic merges their ``model_config``
    with this one: ``.env``, extra variables ignored, fields set by name) and their defaults."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "app"

    environment: Environment = unprefixed("ENVIRONMENT", "development")
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = ""
    # PostgreSQL connections this process keeps open (pool size) and may open beyond them at a peak
    # (overflow, none by default: a connection opened at a peak and closed after it costs the server
    # a backend process each time): replicas × (size + overflow) of every app must stay within
    # max_connections, or within PgBouncer's pool (docs/operations.md, "Connection budget").
    db_pool_size: int = Field(20, ge=1, le=200)
    db_max_overflow: int = Field(0, ge=0, le=200)
    # True when database_url points at PgBouncer in transaction mode: no prepared statements kept
    # per connection (the next transaction may run on another server connection).
    db_pgbouncer: bool = False
    # The marketplace's public address (the gateway's): pages and problem types are made on it.
    public_base_url: str = "http://localhost:8000"
    # Credential that services present to each other's /internal/* (X-Service-Token); one value
    # shared by every app of a deployment.
    service_token: SecretStr = unprefixed("SERVICE_TOKEN",
                                          SecretStr(DEV_SECRET_PREFIX + "service-token-change-me-000000"))
    # Public keys that verify access tokens (base64url, comma-separated). Empty in development:
    # the key pair under var/keys/ is used.
    jwt_public_key: str = unprefixed("JWT_PUBLIC_KEY", "")

    def pool(self) -> dict[str, Any]:
        """The database pool's settings, as :class:`common.db.Database` takes them."""
        return {"pool_size": self.db_pool_size, "max_overflow": self.db_max_overflow,
                "pgbouncer": self.db_pgbouncer}

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, _Env(settings_cls), _DotEnv(settings_cls)]
        folder = SharedSettings().secrets_dir.strip()
        if folder:
            if not Path(folder).is_dir():
                raise ValueError(f"SECRETS_DIR={folder} is not a folder")
            sources.append(_SecretFiles(settings_cls, secrets_dir=folder))
        return tuple(sources)

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
            parts = secret_list(value) or [""]
            if any(p.startswith(DEV_SECRET_PREFIX) or len(p) < MIN_SECRET_LENGTH for p in parts):
                insecure.append(self.env_name(name))
        if insecure:
            raise ValueError(
                f"{', '.join(insecure)}: a development default or shorter than {MIN_SECRET_LENGTH} "
                f"characters; set real secrets when ENVIRONMENT={self.environment}"
            )
        return self


class BusSettings(AppSettings):
    """The settings of an app on the event bus (catalog, orders, notify), one name each for every app."""

    # Empty: events go by HTTP push to notify (the embedded default). nats://…: NATS JetStream; a comma
    # list names several servers of one NATS cluster (the client connects to one, fails over to another).
    event_bus_url: str = unprefixed("EVENT_BUS_URL", "")
    # NATS stream CV_EVENTS and subjects cv.events.* / cv.dead.* for the namespace "cv".
    event_namespace: str = unprefixed("EVENT_NAMESPACE", "cv", pattern=r"^[a-z][a-z0-9]{0,15}$")
    # The stream's limits, applied when it is made and when they change (whichever app starts first):
    # events (and dead letters) older than this many seconds, or beyond this many bytes, are dropped,
    # oldest first; copies kept by a NATS cluster (1 on one server; 3 on a cluster of three).
    event_stream_max_age: float = unprefixed("EVENT_STREAM_MAX_AGE", 14 * 86_400.0, ge=3600)
    event_stream_max_bytes: int = unprefixed("EVENT_STREAM_MAX_BYTES", 1 << 30, ge=1 << 20)
    event_stream_replicas: int = unprefixed("EVENT_STREAM_REPLICAS", 1, ge=1, le=5)

    @property
    def uses_nats(self) -> bool:
        return self.event_bus_url.startswith(("nats://", "tls://"))

    def event_names(self):  # -> common.bus.Names (imported here: the bus imports NATS lazily, not settings)
        from common.bus import Names, StreamLimits

        return Names(self.event_namespace, StreamLimits(self.event_stream_max_age, self.event_stream_max_bytes,
                                                        self.event_stream_replicas))

