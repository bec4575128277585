"""The API gateway. Public routes: its own (health, OpenAPI, identity) and the route table's prefixes,
forwarded to the services by :mod:`gateway.proxy`. Follow the names below to any behaviour."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from common.errors import ServiceUnavailable
from common.keys import dev_private_key, private_key_from_text
from common.service import create_service_app, on_stop_signal
from common.settings import DEV_SECRET_PREFIX, secret_list
from gateway import deps
from gateway.headers import SecurityHeadersMiddleware, script_hashes
from gateway.identity.endpoints import jwks_router
from gateway.identity.endpoints import router as identity_router
from gateway.identity.integrations import integration_headers
from gateway.identity.sms import make_sms
from gateway.identity.tokens import Signer
from gateway.openapi import MergedOpenAPI, own_document
from gateway.paths import RouteTable
from gateway.proxy import ProxyRoute, Upstreams
from gateway.ratelimit import Rule, make_rate_limiter
from gateway.settings import GatewaySettings, proxy_list
from gateway.web import router as web_router
from gateway.web.error_pages import HtmlErrorPages

MIGRATIONS = Path(__file__).parent / "migrations"
SWAGGER_CDN = "https://cdn.jsdelivr.net"
ORDER_CREATION = {"/api/v1/orders", "/api/v1/checkouts"}


def _signing_keys(settings: GatewaySettings):
    """The first key signs; the others (being retired) are still published in the JWKS."""
    secrets = secret_list(settings.jwt_private_key)
    if settings.environment == "development" and secrets[0].startswith(DEV_SECRET_PREFIX):
        return [dev_private_key()]
    return [private_key_from_text(s) for s in secrets]


async def _services_ready(app: FastAPI) -> dict:
    upstreams: Upstreams = app.state.upstreams

    async def check(name: str, client: httpx.AsyncClient) -> tuple[str, str]:
        try:
            resp = await client.get("/readyz", timeout=3.0)
        except httpx.HTTPError as exc:
            return name, f"unreachable ({type(exc).__name__})"
        return name, "ok" if resp.status_code == 200 else f"not ready ({resp.status_code})"

    results = dict(await asyncio.gather(*(check(n, c) for n, c in upstreams.clients.items())))
    failing = {n: r for n, r in results.items() if r != "ok"}
    if failing:
        raise ServiceUnavailable("Not ready: " + ", ".join(f"{n} {r}" for n, r in failing.items()),
                                 services=results)
    return {"services": results}


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    routes = RouteTable(settings.routes)

    async def start(app: FastAPI) -> None:
        app.state.upstreams = Upstreams(settings)
        app.state.restore_signals = on_stop_signal(app.state.upstreams.stopping.set)
        app.state.openapi = MergedOpenAPI(app.state.upstreams.clients)
        app.state.limiter = make_rate_limiter(settings.redis_url)
        app.state.sms = make_sms(settings)

    async def stop(app: FastAPI) -> None:
        app.state.restore_signals()
        await app.state.upstreams.aclose()
        await app.state.limiter.aclose()
        await app.state.sms.aclose()

    app = create_service_app(
        settings,
        title="Chợ Vườn API",
        description="The public REST API of Chợ Vườn, a garden market for small growers. "
                    "Errors are RFC 9457 problem details; lists are cursor-paginated.",
        routers=[identity_router, jwks_router, web_router],
        migrations=MIGRATIONS,
        on_startup=[start],
        on_shutdown=[stop],
        readiness_checks=[_services_ready],
        openapi_url=None,
        public_port=True,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    # Outermost, before the request context: rate limits, the access log, Secure cookies and the
    # X-Forwarded-For sent upstream all see the client behind a trusted proxy, never a forged header.
    if proxy_list(settings.trusted_proxies):
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxy_list(settings.trusted_proxies))
    app.state.signer = Signer(_signing_keys(settings), settings.access_ttl)
    app.state.rules = {name: Rule(name, limit, window) for name, (limit, window) in settings.rate_limits.items()}

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_json(request: Request) -> Response:
        doc, missing = await request.app.state.openapi.document(own_document(app))
        headers = {"X-OpenAPI-Missing": ",".join(missing)} if missing else {}
        return JSONResponse(doc, headers=headers)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        page = get_swagger_ui_html(openapi_url="/openapi.json", title="Chợ Vườn API")
        # Swagger UI comes from its CDN and starts with one inline script: that script, by its hash, and
        # nothing else inline (its inline styles are allowed; scripts are what CSP is for).
        hashes = " ".join(script_hashes(page.body.decode()))
        page.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src {SWAGGER_CDN} {hashes}; style-src {SWAGGER_CDN} 'unsafe-inline'; "
            f"img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'none'")
        return page

    async def prepare(request: Request, service: str, path: str) -> list[tuple[str, str]]:
        """What the gateway does to a request before forwarding it: limits, API key → token."""
        if request.method == "POST" and path.rstrip("/") in ORDER_CREATION:
            await deps.limits(request).check("order-ip", request.client.host if request.client else "unknown")
        return await integration_headers(request)

    # Outermost: a browser's request that ends in problem+json (but not under /api/) gets an HTML page.
    app.add_middleware(HtmlErrorPages)

    # First of the app's routes: the route table's prefixes never reach FastAPI's routing.
    app.router.routes.insert(0, ProxyRoute(routes, settings, prepare))

    return app
