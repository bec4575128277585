"""Annotated types shared by the apps' routes, and the base of their request bodies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, ConfigDict

MAX_ID = 2**31 - 1  # INTEGER keys; a larger number in a path is a 422, never a database overflow

IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Numeric id")]


class StrictBody(BaseModel):
    """Base of every request body: a field the API does not know is a 422 naming it, not silently
    dropped (``"stok": 7`` is a typo to report, ``"is_admin": true`` an attempt to refuse).
    ``tests/contract/test_strict_bodies.py`` walks every write route to keep it so."""

    model_config = ConfigDict(extra="forbid")
