import services.orders.orders.models  # noqa: F401  (registers the tables)
import services.orders.outbox  # noqa: F401
from common.migrations import run_migrations
from services.orders.base import OrdersModel  # noqa: E402

run_migrations(OrdersModel.metadata)
