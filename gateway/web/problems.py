"""``/problems/{slug}``: the page each problem type's URI leads to (common/errors.py, PROBLEM_TYPES),
in the page's language, and ``/problems/`` listing them all. Problem types are absolute URIs on the
marketplace's public address, so a client (or a person) that follows one lands here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from markupsafe import Markup, escape
from starlette.responses import Response

from common.errors import PROBLEM_TYPES, NotFound, ProblemType, problem_type
from gateway.web.core import WebRoute, page
from gateway.web.i18n import locale_of

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def described(request: Request, problem: ProblemType) -> Markup:
    """The type's description in the page's language, `names` shown as code."""
    parts = str(escape(problem.vi if locale_of(request) == "vi" else problem.en)).split("`")
    return Markup("".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)))


@router.get("/problems/")
async def problem_types(request: Request) -> Response:
    ordered = sorted(PROBLEM_TYPES.items(), key=lambda item: (item[1].status, item[0]))
    return page(request, "problems.html", public=True,
                problems=[(slug, t.status, described(request, t)) for slug, t in ordered])


@router.get("/problems/{slug}")
async def problem_page(request: Request, slug: Annotated[str, Path(pattern=r"^[a-z0-9-]{1,60}$")]) -> Response:
    found = PROBLEM_TYPES.get(slug)
    if found is None:
        raise NotFound("No such problem type")
    return page(request, "problem.html", public=True, problem=found, slug=slug, text=described(request, found),
                type_uri=problem_type(slug))
