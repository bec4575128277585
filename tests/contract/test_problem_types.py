"""Problem types that resolve: every `type` is an absolute URI on the marketplace's public address,
every type any app can answer with is listed (common/errors.py, PROBLEM_TYPES) and its page is served
by the gateway; every 413 carries `limit` (declared lengths and chunked bodies); a body that is not
sent as JSON is a 415."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import httpx

import gateway
import services
from common.errors import _HTTP_SLUGS, PROBLEM_TYPES, Problem
from tests.support.fullstack import full_stack

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = "application/problem+json"


def _subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


def test_every_problem_any_app_can_raise_is_listed() -> None:
    for package in (gateway, services):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".migrations" not in module.name and not module.name.endswith("__main__"):
                importlib.import_module(module.name)
    raised = {(c.slug, c.status) for c in _subclasses(Problem) if c.__module__ != "services.orders.catalog_client"}
    assert len(raised) > 20
    # And those built by hand (`problem_response(413, "payload-too-large", …)`), and Starlette's errors.
    sources = [p.read_text() for d in ("common", "gateway", "services") for p in (ROOT / d).rglob("*.py")]
    by_hand = {(slug, int(status)) for text in sources
               for status, slug in re.findall(r'problem_response\((\d{3}), "([a-z-]+)"', text)}
    assert len(by_hand) >= 8
    listed = {(slug, t.status) for slug, t in PROBLEM_TYPES.items()}
    assert raised | by_hand <= listed, sorted((raised | by_hand) - listed)
    assert set(_HTTP_SLUGS.values()) <= set(PROBLEM_TYPES)
    api_guide = (ROOT / "docs" / "api.md").read_text()
    assert [slug for slug in PROBLEM_TYPES if f"/problems/{slug}`" not in api_guide] == []


async def test_problem_types_are_absolute_and_each_resolves_to_its_page(db_urls) -> None:
    async with full_stack(db_urls) as s:
        for app in s.apps.values():  # the public address is the test gateway's, as in production
            app.state.settings.public_base_url = s.urls["gateway"]
        grower = await s.register("grower", "0912 700 004")
        seen = [
            await s.gw.get("/api/v1/orders"),  # 401, from orders
            await s.gw.get("/api/v1/products/999"),  # 404, from the catalog
            await s.gw.post("/api/v1/shops", json={"name": ""}, headers=grower["headers"]),  # 422
            await s.gw.post("/api/v1/shops", content=b"{}",
                            headers={**grower["headers"], "Content-Type": "text/plain"}),  # 415
            await s.gw.post("/api/v1/auth/token", content=b"{", headers={"Content-Type": "application/json"}),  # 400
            await s.gw.get("/api/v1/me"),  # 401, from the gateway itself
            await s.gw.delete("/api/v1/shops", headers=grower["headers"]),  # 405
        ]
        assert [r.status_code for r in seen] == [401, 404, 422, 415, 400, 401, 405]
        for resp in seen:
            assert resp.headers["content-type"] == PROBLEM
            uri = resp.json()["type"]
            assert uri.startswith(f"{s.urls['gateway']}/problems/"), uri
            page = await s.gw.get(uri.removeprefix(s.urls["gateway"]))
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), uri
            assert f'<code lang="en">{resp.json()["title"]}</code>' in page.text, uri
        for slug, problem in PROBLEM_TYPES.items():
            vi = await s.gw.get(f"/problems/{slug}")
            en = await s.gw.get(f"/problems/{slug}", headers={"Cookie": "cv_lang=en"})
            assert vi.status_code == en.status_code == 200, slug
            assert problem.vi.split("`")[0].strip()[:20] in vi.text, slug
            assert problem.en.split("`")[0].strip()[:20].replace("'", "&#39;") in en.text, slug
            assert "<code>" in vi.text and f"<code>{slug}</code>" in vi.text and "`" not in vi.text, slug
        index = await s.gw.get("/problems/")
        assert index.status_code == 200 and all(f'href="/problems/{slug}"' in index.text for slug in PROBLEM_TYPES)
        assert (await s.gw.get("/problems/no-such-thing")).status_code == 404


def _chunks(size: int, chunk: int = 65_536):
    async def body():
        sent = 0
        while sent < size:
            yield b" " * min(chunk, size - sent)
            sent += chunk
    return body()


async def test_every_413_says_its_limit_and_a_body_not_sent_as_json_is_415(db_urls) -> None:
    async with full_stack(db_urls) as s:
        grower = await s.register("grower", "0912 700 005")
        json_type = {**grower["headers"], "Content-Type": "application/json"}
        big = 1_048_576 + 10
        replies = {
            "gateway, declared": await s.gw.post("/api/v1/shops", content=b" " * big, headers=json_type),
            "gateway, chunked": await s.gw.post("/api/v1/shops", content=_chunks(big), headers=json_type),
            "gateway's own, declared": await s.gw.post("/api/v1/auth/register", content=b" " * big, headers=json_type),
            "gateway's own, chunked": await s.gw.post("/api/v1/auth/register", content=_chunks(big),
                                                      headers=json_type),
        }
        async with httpx.AsyncClient(base_url=s.urls["catalog"], timeout=15) as catalog:
            replies["service, declared"] = await catalog.post("/api/v1/shops", content=b" " * big, headers=json_type)
            replies["service, chunked"] = await catalog.post("/api/v1/shops", content=_chunks(big), headers=json_type)
        for where, resp in replies.items():
            assert resp.status_code == 413, (where, resp.status_code, resp.text)
            body = resp.json()
            assert body["type"].endswith("/problems/payload-too-large") and body["limit"] == 1_048_576, (where, body)

        for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/xml", None):
            headers = {**grower["headers"], **({"Content-Type": ctype} if ctype else {})}
            resp = await s.gw.post("/api/v1/api-keys", content=b'{"name": "k", "scopes": ["catalog:read"]}',
                                   headers=headers)
            assert resp.status_code == 415, (ctype, resp.text)
            assert resp.json()["type"].endswith("/problems/unsupported-media-type")
        ok = await s.gw.post("/api/v1/api-keys", content=b'{"name": "k", "scopes": ["catalog:read"]}',
                             headers=json_type)
        assert ok.status_code == 201
