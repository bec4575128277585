from common.cli import run_cli
from services.orders.app import MIGRATIONS
from services.orders.settings import OrdersSettings

if __name__ == "__main__":
    run_cli("services.orders", "services.orders.app:create_app", OrdersSettings, MIGRATIONS)
