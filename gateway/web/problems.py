"""``/problems/{slug}``: the page each problem type's URI leads to (common/errors.py, PROBLEM_TYPES),
in the page's language, and ``/problems/`` listing them all. Problem types are absolute URIs on the
marketplace's public address, so a client (or a person) that follows one lands here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from common.errors import PROBLEM_TYPES, NotFound, problem_type
from gateway.web.core import WebRoute, page

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/problems/")
async def problem_types(request: Request) -> Response:
    ordered = sorted(PROBLEM_TYPES.items(), key=lambda item: (item[1].status, item[0]))
    return page(request, "problems.html", public=True, problems=ordered)


@router.get("/problems/{slug}")
async def problem_page(request: Request, slug: Annotated[str, Path(pattern=r"^[a-z0-9-]{1,60}$")]) -> Response:
    found = PROBLEM_TYPES.get(slug)
    if found is None:
        raise NotFound("No such problem type")
    return page(request, "problem.html", public=True, problem=found, type_uri=problem_type(slug))
