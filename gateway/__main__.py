from common.cli import run_cli
from gateway.app import MIGRATIONS
from gateway.seed import seed_command
from gateway.settings import GatewaySettings

if __name__ == "__main__":
    run_cli("gateway", "gateway.app:create_app", GatewaySettings, MIGRATIONS, extra={"seed": seed_command()})
