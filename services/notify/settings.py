from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from common.settings import AppSettings, unprefixed


class NotifySettings(AppSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFY_", env_file=".env", extra="ignore",
                                      populate_by_name=True)
    service_name: ClassVar[str] = "notify"

    port: int = 8003
    database_url: str = "sqlite+aiosqlite:///var/notify.db"
    event_bus_url: str = unprefixed("EVENT_BUS_URL", "")
    # smtp://host:port (Mailpit in the production shape); empty: mail is logged, not sent.
    smtp_url: str = unprefixed("SMTP_URL", "")
