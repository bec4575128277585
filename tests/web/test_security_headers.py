"""Security headers on every HTML page the gateway serves, signed in or not, errors included.

The pages are found as a visitor finds them: from the home page, the grower's desk and a few
addresses that lead to error pages, following every same-site link. Each HTML reply must carry a
Content-Security-Policy that forbids inline script (``'unsafe-inline'`` never in ``script-src``, each
inline ``<script>`` allowed only by its hash) and framing (``frame-ancestors 'none'``),
``X-Content-Type-Options: nosniff`` and a ``Referrer-Policy``; no page may rely on an inline event
handler (``onclick=…``), which such a policy blocks. Every other reply gets nosniff too.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from gateway.headers import script_hashes
from tests.web.conftest import Market, hidden

pytestmark = pytest.mark.asyncio(loop_scope="module")

REFERRER_POLICIES = {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}
LINK = re.compile(r'<(?:a|link)\b[^>]*\bhref="([^"#]*)', re.I)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
NOT_FOLLOWED = ("/grower/stream", "/api/", "/media/", "/static/", "/lang/")


def csp_directives(value: str) -> dict[str, list[str]]:
    found = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            found[words[0].lower()] = words[1:]
    return found


def problems_with(path: str, resp: httpx.Response) -> list[str]:
    problems = []
    if resp.headers.get("x-content-type-options") != "nosniff":
        problems.append(f"{path}: X-Content-Type-Options is {resp.headers.get('x-content-type-options')!r}")
    if not resp.headers.get("content-type", "").startswith("text/html"):
        return problems
    if resp.headers.get("referrer-policy") not in REFERRER_POLICIES:
        problems.append(f"{path}: Referrer-Policy is {resp.headers.get('referrer-policy')!r}")
    csp = csp_directives(resp.headers.get("content-security-policy", ""))
    scripts = csp.get("script-src", csp.get("default-src"))
    if scripts is None:
        problems.append(f"{path}: no Content-Security-Policy restricting scripts ({dict(csp)})")
    else:
        if "'unsafe-inline'" in scripts or "*" in scripts or "'unsafe-eval'" in scripts:
            problems.append(f"{path}: script-src allows {scripts}")
        for needed in script_hashes(resp.text):
            if needed not in scripts:
                problems.append(f"{path}: an inline script is not allowed by its hash ({needed})")
    if csp.get("frame-ancestors") != ["'none'"]:
        problems.append(f"{path}: frame-ancestors is {csp.get('frame-ancestors')}")
    if INLINE_HANDLER.search(resp.text):
        problems.append(f"{path}: an inline event handler, blocked by the policy: "
                        f"{INLINE_HANDLER.search(resp.text).group(0)[:80]}")
    return problems


async def crawl(client: httpx.AsyncClient, starts: list[str], limit: int = 80) -> dict[str, httpx.Response]:
    seen: dict[str, httpx.Response] = {}
    queue = list(starts)
    while queue and len(seen) < limit:
        path = queue.pop(0)
        if path in seen:
            continue
        resp = await client.get(path)
        seen[path] = resp
        if resp.headers.get("content-type", "").startswith("text/html"):
            for href in LINK.findall(resp.text):
                target = urlsplit(urljoin(str(client.base_url) + path, href))
                local = target.path + (f"?{target.query}" if target.query else "")
                if target.netloc == client.base_url.netloc and not local.startswith(NOT_FOLLOWED):
                    queue.append(local)
    return seen


async def test_every_html_page_carries_the_security_headers(market: Market) -> None:
    product, shop = market.product, market.shop
    visitor_pages = ["/", f"/s/{shop['slug']}", f"/p/{product['id']}", f"/p/{product['id']}/order",
                     "/s/khong-co-vuon-nay", "/p/999999", "/t/not-a-tracking-token", "/problems/",
                     "/problems/not-found", "/grower/login", "/grower/signup", "/docs"]
    async with market.browser() as visitor:
        seen = await crawl(visitor, visitor_pages)
        seen["/api/v1/products (JSON)"] = await visitor.get("/api/v1/products", params={"limit": 1})
        seen["/nothing-here (problem)"] = await visitor.get("/nothing-here")
    async with market.browser() as grower:
        html = (await grower.get("/grower/login")).text
        signed_in = await grower.post("/grower/login", data={"csrf": hidden(html, "csrf"), "login": "0912345670",
                                                              "password": "Sen-hong-Dong-Thap-7"})
        assert signed_in.status_code == 303, signed_in.text
        desk = await crawl(grower, ["/grower/", "/grower/shop", "/grower/products", "/grower/products/new",
                                    f"/grower/products/{product['id']}", "/grower/packing",
                                    "/grower/orders/999999"])
    pages = {**seen, **{f"{p} (signed in)": r for p, r in desk.items()}}
    html_pages = [p for p, r in pages.items() if r.headers.get("content-type", "").startswith("text/html")]
    statuses = {r.status_code for p, r in pages.items() if p in html_pages}
    assert len(html_pages) >= 15 and 404 in statuses and 200 in statuses, (len(html_pages), statuses)
    problems = [problem for path, resp in pages.items() for problem in problems_with(path, resp)]
    assert problems == [], "\n".join(problems)


async def test_the_api_docs_allow_their_one_inline_script_by_its_hash(market: Market) -> None:
    async with market.browser() as client:
        docs = await client.get("/docs")
    csp = csp_directives(docs.headers["content-security-policy"])
    hashes = script_hashes(docs.text)
    assert len(hashes) == 1 and hashes[0] in csp["script-src"]
    assert [s for s in csp["script-src"] if s.startswith("'sha256-")] == hashes  # that one, nothing more
    tampered = docs.text.replace("SwaggerUIBundle({", "SwaggerUIBundle({ evil: fetch('//x'),")
    assert script_hashes(tampered)[0] not in csp["script-src"]


def test_the_checks_notice_a_weak_page() -> None:
    """The checks above, fed replies that break each rule."""
    good = {"content-type": "text/html; charset=utf-8", "x-content-type-options": "nosniff",
            "referrer-policy": "strict-origin-when-cross-origin",
            "content-security-policy": "default-src 'self'; script-src 'self'; frame-ancestors 'none'"}
    assert problems_with("/ok", httpx.Response(200, headers=good, text="<p>ok</p>")) == []
    cases = {
        "script-src allows": {**good, "content-security-policy": "script-src 'self' 'unsafe-inline'; "
                                                                  "frame-ancestors 'none'"},
        "frame-ancestors is None": {**good, "content-security-policy": "script-src 'self'"},
        "no Content-Security-Policy": {k: v for k, v in good.items() if k != "content-security-policy"},
        "X-Content-Type-Options": {k: v for k, v in good.items() if k != "x-content-type-options"},
        "Referrer-Policy": {**good, "referrer-policy": "unsafe-url"},
    }
    for expected, headers in cases.items():
        found = problems_with("/weak", httpx.Response(200, headers=headers, text="<p>weak</p>"))
        assert any(expected in p for p in found), (expected, found)
    inline = problems_with("/weak", httpx.Response(200, headers=good, text="<script>alert(1)</script>"))
    assert any("not allowed by its hash" in p for p in inline), inline
    handler = problems_with("/weak", httpx.Response(200, headers=good, text='<button onclick="go()">'))
    assert any("inline event handler" in p for p in handler), handler
