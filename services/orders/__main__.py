from common.cli import run_cli
from common.reencrypt import reencrypt_command
from services.orders.app import MIGRATIONS
from services.orders.settings import OrdersSettings

if __name__ == "__main__":
    run_cli("services.orders", "services.orders.app:create_app", OrdersSettings, MIGRATIONS,
            extra={"reencrypt": reencrypt_command([("orders", "bank", "account_encrypted")])})
