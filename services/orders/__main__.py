from common.cli import run_cli
from common.reencrypt import reencrypt_command
from services.orders.app import MIGRATIONS
from services.orders.settings import OrdersSettings

# Every value orders keeps encrypted: the shop's bank account of a transfer order, the buyer's link (decision 0024).
ENCRYPTED = [("orders", "bank", "account_encrypted"), ("orders", "tracking_token_encrypted", None)]

if __name__ == "__main__":
    run_cli("services.orders", "services.orders.app:create_app", OrdersSettings, MIGRATIONS,
            extra={"reencrypt": reencrypt_command(ENCRYPTED)})
