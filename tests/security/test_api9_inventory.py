"""API9 Improper Inventory Management: the merged OpenAPI documents exactly the public API (every
public route, no /internal, nothing for operators), and no spelling of a path takes a request from the
gateway to an /internal route of the real services.

Elsewhere: canonical paths, unit by unit (tests/gateway/test_paths.py); the same spellings against a
stand-in upstream that records what reaches it, and /internal paths of an upstream's document left out
of the merge (tests/gateway/test_proxy.py::test_internal_is_never_routed, ::test_merged_openapi_and_docs).
"""

from __future__ import annotations

import logging
import re
import socket
import time

import pytest
from fastapi import routing

from gateway.paths import RouteTable
from tests.security.conftest import Market

GATEWAY_OWN_PREFIXES = ("/api/v1/auth/", "/api/v1/me", "/api/v1/api-keys", "/.well-known/", "/healthz", "/readyz")


def test_the_merged_document_lists_the_public_api_and_nothing_else(market: Market) -> None:
    resp = market.gw.get("/openapi.json")
    assert resp.status_code == 200 and "x-openapi-missing" not in resp.headers
    paths = set(resp.json()["paths"])
    assert not [p for p in paths if "internal" in p.lower()]
    assert not paths & {"/metrics", "/docs", "/openapi.json"}  # health checks are public, and documented
    table = RouteTable(market.apps["gateway"].state.settings.routes)
    unrouted = [p for p in paths if table.match(p.split("{", 1)[0].rstrip("/") or "/") is None
                and not p.startswith(GATEWAY_OWN_PREFIXES)]
    assert not unrouted, f"documented but not routed by the gateway: {unrouted}"
    # Every public route a service really serves is documented: no shadow API.
    for name in ("catalog", "orders", "notify"):
        served = {re.sub(r"\{(\w+):\w+\}", r"{\1}", getattr(r, "path", ""))  # {id:int} is documented as {id}
                  for r in routing.iter_route_contexts(market.apps[name].routes)}
        public = {p for p in served if table.match(p.split("{", 1)[0].rstrip("/") or "/") == name
                  and p.startswith("/api/")}
        assert public, name
        assert public <= paths, f"{name} serves undocumented public routes: {sorted(public - paths)}"
        assert not [p for p in served if p.startswith("/internal") and p in paths]


SPELLINGS = [
    "/internal/reservations", "/INTERNAL/reservations", "/Internal/events", "/%69nternal/reservations",
    "/%49NTERNAL/reservations", "//internal/reservations", "///internal/events", "/api/v1/../internal/reservations",
    "/api/v1/products/../../internal/reservations", "/api/v1/products/%2e%2e/%2e%2e/internal/reservations",
    "/api/v1/products/%2E%2E%2F%2E%2E%2Finternal%2Freservations", "/api/v1/products%2f..%2f..%2finternal",
    "/api/v1/products/..%2f..%2finternal/reservations", "/api/v1/products/%252e%252e/%252e%252e/internal/events",
    "/api/v1/products/%c0%ae%c0%ae/%c0%ae%c0%ae/internal/reservations", "/api/v1/products/..;/..;/internal/events",
    "/api/v1/products\\..\\..\\internal\\reservations", "/api/v1/products/%5c..%5c..%5cinternal",
    "/api/v1/orders/internal/accounts/1", "/api/v1/products/internal%00/reservations", "/internal./reservations",
    "/%EF%BD%89nternal/reservations", "/api/v1/webhooks/../../internal/events", "/internal%2freservations",
    "/./internal/reservations", "/api/v1/products/;/../../internal/reservations",
]


def _raw(gateway_url: str, method: str, target: str) -> tuple[int, bytes]:
    host, port = gateway_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        body = b'{"id": "r-12345678", "lines": [{"variant_id": 1, "quantity": 1}]}'
        s.sendall(f"{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"X-Service-Token: forged\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                  + body)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1]), reply


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_no_spelling_reaches_an_internal_route(market: Market, method: str, caplog) -> None:
    caplog.set_level(logging.INFO, logger="http")
    targets = SPELLINGS + [f"{market.urls['catalog']}/internal/reservations",  # absolute-form request target
                           f"{market.urls['notify']}/internal/events"]
    for target in targets:
        status, reply = _raw(market.urls["gateway"], method, target)
        assert 400 <= status < 500, (target, reply[:300])
        assert b"service credential" not in reply, (target, reply[:300])
    time.sleep(0.3)  # a service writes its access line just after its reply
    reached = [r.getMessage() for r in caplog.records
               if r.name == "http" and getattr(r, "service", "gateway") != "gateway"
               and "internal" in r.getMessage().lower()]
    assert not reached, reached
    # The control: the services do log what reaches them.
    market.direct["catalog"].get("/internal/reservations/x")
    for _ in range(100):
        if any(getattr(r, "service", "") == "catalog" and "/internal/" in r.getMessage() for r in caplog.records):
            break
        time.sleep(0.02)
    else:
        raise AssertionError("the catalog's access log was not seen: the check above would miss a reach")

