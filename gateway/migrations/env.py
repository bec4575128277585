import gateway.identity.models  # noqa: F401  (registers the tables)
from common.migrations import run_migrations
from gateway.base import GatewayModel  # noqa: E402

run_migrations(GatewayModel.metadata)
