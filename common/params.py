"""Annotated types shared by the apps' routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

MAX_ID = 2**31 - 1  # INTEGER keys; a larger number in a path is a 422, never a database overflow

IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Numeric id")]
