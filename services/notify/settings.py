from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import DEV_SECRET_PREFIX, BusSettings, unprefixed

# Webhooks: seconds before each try of a delivery, the Standard Webhooks example schedule
# (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: eight tries over about 27.6 hours).
WEBHOOK_RETRY_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


class NotifySettings(BusSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFY_")
    service_name: ClassVar[str] = "notify"

    port: int = 8003
    database_url: str = "sqlite+aiosqlite:///var/notify.db"
    # smtp://host:port (Mailpit in the production shape); empty: mail is logged, not sent.
    smtp_url: str = unprefixed("SMTP_URL", "")
    # Mail: the sender's address; tries before a mail is dead; longest sleep between looks for due retries.
    mail_from: str = Field("Chợ Vườn <no-reply@cho-vuon.local>", min_length=3, max_length=200)
    mail_max_attempts: int = Field(16, ge=1, le=100)
    mail_poll_interval: float = Field(30.0, gt=0, le=3600)
    # Seconds between keep-alive comments on an idle notification stream.
    stream_heartbeat: float = Field(10.0, gt=0, le=60)
    # NATS: deliveries of one event before it goes to the dead letters.
    max_deliver: int = Field(8, ge=1, le=100)
    # NATS: events handled at once across every notify replica. 1 keeps the stream's order (an order's
    # placed before its cancelled, inbox rows in the order of the events); more spreads them over the
    # replicas at once and gives that order up.
    events_in_flight: int = Field(1, ge=1, le=1000)

    # Webhooks (services/notify/webhooks/). Encrypts the endpoints' signing secrets at rest.
    data_key: SecretStr = SecretStr(DEV_SECRET_PREFIX + "notify-data-key-change-me")
    # Development only: let endpoints on 127.0.0.0/8 and ::1 through the SSRF guard (refused in production).
    webhooks_allow_loopback: bool = False
    # Seconds before each try (jittered ±20 %); after the last one fails the delivery is dead.
    webhooks_retry_schedule: list[Annotated[float, Field(ge=0, le=7 * 86_400)]] = Field(
        default_factory=lambda: list(WEBHOOK_RETRY_SCHEDULE), min_length=1, max_length=20)
    # An endpoint whose deliveries have failed, with no success, for this many seconds is disabled.
    webhooks_disable_after: float = Field(5 * 86_400, gt=0)
    # Seconds for one delivery (connect, send, the receiver's answer).
    webhooks_timeout: float = Field(15.0, gt=0, le=60)

    # Web Push (services/notify/push/): the VAPID private key, base64url of its raw 32 bytes (P-256), as
    # `python -m services.notify.push.vapid` prints it. Unset: in development a key kept in var/keys/;
    # elsewhere push is off. The public key is served to the desk (GET /api/v1/push/key).
    vapid_private_key: SecretStr | None = None
    # Who runs this server, for the push services (the VAPID "sub" claim): a mailto: or https: address.
    vapid_subject: str = Field("mailto:no-reply@cho-vuon.local", pattern=r"^(mailto:|https://).{3,200}$")
    # Tries of one push before it is dead; seconds one try may take.
    push_max_attempts: int = Field(8, ge=1, le=50)
    push_timeout: float = Field(10.0, gt=0, le=60)

    @field_validator("vapid_private_key", mode="before")
    @classmethod
    def _unset_when_blank(cls, value):
        """``NOTIFY_VAPID_PRIVATE_KEY=`` (compose passes it so when not exported) means not set."""
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if isinstance(text, str) and not text.strip() else value

    @model_validator(mode="after")
    def _no_loopback_webhooks_in_production(self) -> NotifySettings:
        if self.webhooks_allow_loopback and self.environment == "production":
            raise ValueError("NOTIFY_WEBHOOKS_ALLOW_LOOPBACK is for development; it is refused in production")
        return self
