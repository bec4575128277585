from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from common.settings import DEV_SECRET_PREFIX, BusSettings


class OrdersSettings(BusSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERS_")
    service_name: ClassVar[str] = "orders"

    port: int = 8002
    database_url: str = "sqlite+aiosqlite:///var/orders.db"
    catalog_url: str = "http://127.0.0.1:8001"
    catalog_timeout: float = Field(5.0, gt=0, le=60)
    # Seconds between reconciler rounds (commit or release what a crash left); 0 turns it off.
    reconcile_interval: float = Field(5.0, ge=0)
    # The outbox relay polls this often besides waking on every commit; 0 turns the relay off.
    relay_poll_interval: float = Field(2.0, ge=0)
    # Encrypts the shop's bank account number kept with each bank-transfer order.
    data_key: SecretStr = SecretStr(DEV_SECRET_PREFIX + "orders-data-key-change-me")
    notify_url: str = "http://127.0.0.1:8003"
    # Seconds between tries to hand the buyers' mail (the tracking link) to notify while it is down; 0: only
    # when an order is stored (orders/tracking.py).
    buyer_mail_interval: float = Field(30.0, ge=0)
    # Empty: events go by HTTP push to notify (the embedded default). nats://…: NATS JetStream.
