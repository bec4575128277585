from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from common.settings import DEV_SECRET_PREFIX, BusSettings


class CatalogSettings(BusSettings):
    model_config = SettingsConfigDict(env_prefix="CATALOG_")
    service_name: ClassVar[str] = "catalog"

    port: int = 8001
    database_url: str = "sqlite+aiosqlite:///var/catalog.db"
    # Stock held for an order that is never committed comes back after this long.
    reservation_ttl: int = Field(900, ge=10, le=86_400)
    reservation_sweep_interval: float = Field(15.0, ge=0, description="Seconds between sweeps; 0 turns it off")
    # Events (stock.low): HTTP push to notify unless EVENT_BUS_URL names NATS.
    notify_url: str = "http://127.0.0.1:8003"
    relay_poll_interval: float = Field(2.0, ge=0, description="Outbox relay poll; 0 turns the relay off")
    # Encrypts growers' bank account numbers at rest.
    data_key: SecretStr = SecretStr(DEV_SECRET_PREFIX + "catalog-data-key-change-me")
    # Photos (services/catalog/photos/): stored files, served at {public_base_url}/media/{name}.
    media_dir: str = "var/media"
    max_photo_bytes: int = Field(15 * 1_048_576, ge=1, description="Largest photo upload, bytes")
    # Anonymous listings, product pages and the shops' list kept until what they show changes
    # (services/catalog/listings.py); off: every one is read from the database (to measure the query
    # path, or to rule the cache out).
    listing_cache: bool = True
    photo_decode_workers: int = Field(2, ge=1, le=32, description="Photos decoded at once (memory)")
