from common.cli import run_cli
from gateway.app import MIGRATIONS
from gateway.seed import seed_command
from gateway.settings import GatewaySettings


def prefork() -> None:
    """Before common.launch forks: the common-password set, built once and shared by the processes."""
    from gateway.identity.passwords import common_passwords

    common_passwords()


if __name__ == "__main__":
    run_cli("gateway", "gateway.app:create_app", GatewaySettings, MIGRATIONS, extra={"seed": seed_command()})
