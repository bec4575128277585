from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from common.settings import AppSettings, unprefixed


class OrdersSettings(AppSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERS_", env_file=".env", extra="ignore",
                                      populate_by_name=True)
    service_name: ClassVar[str] = "orders"

    port: int = 8002
    database_url: str = "sqlite+aiosqlite:///var/orders.db"
    catalog_url: str = "http://127.0.0.1:8001"
    notify_url: str = "http://127.0.0.1:8003"
    # Empty: events go by HTTP push to notify (the embedded default). nats://…: NATS JetStream.
    event_bus_url: str = unprefixed("EVENT_BUS_URL", "")
