from common.cli import run_cli
from common.reencrypt import reencrypt_command
from services.notify.app import MIGRATIONS
from services.notify.events.cli import add_dead_letters_command
from services.notify.mail.cli import add_dead_mail_command
from services.notify.settings import NotifySettings

if __name__ == "__main__":
    run_cli("services.notify", "services.notify.app:create_app", NotifySettings, MIGRATIONS,
            extra={"dead-mail": add_dead_mail_command(), "dead-letters": add_dead_letters_command(),
                   "reencrypt": reencrypt_command([("webhook_endpoints", "secret_encrypted", None),
                                                   ("webhook_endpoints", "previous_secret_encrypted", None)])})
