from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from common.settings import AppSettings


class CatalogSettings(AppSettings):
    model_config = SettingsConfigDict(env_prefix="CATALOG_", env_file=".env", extra="ignore",
                                      populate_by_name=True)
    service_name: ClassVar[str] = "catalog"

    port: int = 8001
    database_url: str = "sqlite+aiosqlite:///var/catalog.db"
    # Where buyers see shops and products: the gateway's public address.
    public_base_url: str = "http://localhost:8000"
