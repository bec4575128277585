from common.cli import run_cli
from services.notify.app import MIGRATIONS
from services.notify.settings import NotifySettings

if __name__ == "__main__":
    run_cli("services.notify", "services.notify.app:create_app", NotifySettings, MIGRATIONS)
