from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from common.settings import DEV_SECRET_PREFIX, AppSettings


class CatalogSettings(AppSettings):
    model_config = SettingsConfigDict(env_prefix="CATALOG_", env_file=".env", extra="ignore",
                                      populate_by_name=True)
    service_name: ClassVar[str] = "catalog"

    port: int = 8001
    database_url: str = "sqlite+aiosqlite:///var/catalog.db"
    # Where buyers see shops and products: the gateway's public address.
    public_base_url: str = "http://localhost:8000"
    # Encrypts growers' bank account numbers at rest.
    # Stock held for an order that is never committed comes back after this long.
    reservation_ttl: int = Field(900, ge=10, le=86_400)
    reservation_sweep_interval: float = Field(15.0, ge=0, description="Seconds between sweeps; 0 turns it off")
    data_key: SecretStr = SecretStr(DEV_SECRET_PREFIX + "catalog-data-key-change-me")
