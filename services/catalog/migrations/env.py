import services.catalog.outbox  # noqa: F401  (registers the tables)
import services.catalog.photos.models  # noqa: F401
import services.catalog.products.models  # noqa: F401
import services.catalog.reservations.models  # noqa: F401
import services.catalog.shops.models  # noqa: F401
from common.migrations import run_migrations
from services.catalog.base import CatalogModel  # noqa: E402

run_migrations(CatalogModel.metadata)
