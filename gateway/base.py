"""The gateway's own SQLModel registry: its tables live in its own metadata, apart from other apps'."""

from sqlalchemy.orm import registry
from sqlmodel import SQLModel


class GatewayModel(SQLModel, registry=registry()):
    pass
