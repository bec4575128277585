import services.notify.events.models  # noqa: F401
import services.notify.inbox.models  # noqa: F401  (registers the tables)
import services.notify.mail.models  # noqa: F401
import services.notify.preferences.models  # noqa: F401
import services.notify.push.models  # noqa: F401
import services.notify.webhooks.models  # noqa: F401
from common.migrations import run_migrations
from services.notify.base import NotifyModel  # noqa: E402

run_migrations(NotifyModel.metadata)
