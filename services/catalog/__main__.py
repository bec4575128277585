from common.cli import run_cli
from common.reencrypt import reencrypt_command
from services.catalog.app import MIGRATIONS
from services.catalog.photos.cli import add_photo_sizes_command
from services.catalog.products_csv.cli import add_csv_commands
from services.catalog.seed import add_seed_command
from services.catalog.settings import CatalogSettings


def prefork() -> None:
    """Before common.launch forks: Pillow and pillow-heif, loaded once and shared by the processes."""
    from services.catalog.photos.processing import load_pillow

    load_pillow()


if __name__ == "__main__":
    run_cli("services.catalog", "services.catalog.app:create_app", CatalogSettings, MIGRATIONS,
            extra={"seed": add_seed_command(), **add_csv_commands(), "photo-sizes": add_photo_sizes_command(),
                   "reencrypt": reencrypt_command([("shops", "bank_account_encrypted", None)])})
