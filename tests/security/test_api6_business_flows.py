"""API6 Unrestricted Access to Sensitive Business Flows (and the throttling half of API2/API4):
sign-in and order placing are limited per client address and per account, and the limits hold against
the usual ways round them.

The gateway runs here with uvicorn configured as ``python -m gateway serve`` configures it
(``proxy_headers=False``; the last test holds common/cli.py to that), so a client cannot pick its own
address with ``X-Forwarded-For``, ``X-Real-IP`` or ``Forwarded``. Its upstreams are down: the limits
are the gateway's, and a refused request never reaches a service (a 503 means it got past the limit,
a 429 that it did not).

Elsewhere: the limiter itself, in memory and in Redis (tests/gateway/test_ratelimit.py), sign-in limits
per account and per address (tests/gateway/test_identity.py::test_sign_in_limited_per_account_and_per_ip),
orders per address (tests/gateway/test_proxy.py::test_order_creation_is_limited_per_address), each API
key's own limit (tests/gateway/test_api_keys_through_gateway.py), Idempotency-Key semantics and no
oversell under concurrent orders (tests/orders/test_placing.py), reservations released after their TTL
(tests/orders/test_lifecycle.py::test_a_crash_after_reserving_is_healed_by_the_ttl).
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator

import httpx
import pytest

from common import cli
from tests.apps import make_app
from tests.security.conftest import ORDER, PASSWORD, PROBLEM, serve_as_in_production
from tests.support.servers import free_port

LIMITS = {"login-account": (3, 60), "login-ip": (6, 60), "register-ip": (3, 60), "api-key": (100, 60),
          "order-ip": (3, 60)}
SPOOFS = [{"X-Forwarded-For": "203.0.113.{n}"}, {"X-Real-IP": "198.51.100.{n}"},
          {"Forwarded": "for=192.0.2.{n};proto=https"}, {"X-Forwarded-For": "10.0.0.{n}, 127.0.0.1"},
          {"True-Client-IP": "203.0.113.{n}", "CF-Connecting-IP": "203.0.113.{n}"}]


def spoofed(n: int) -> dict[str, str]:
    return {k: v.format(n=n) for k, v in SPOOFS[n % len(SPOOFS)].items()}


@pytest.fixture
def gateway(tmp_path) -> Iterator[httpx.Client]:
    dead = f"http://127.0.0.1:{free_port()}"
    app = make_app("gateway", {"gateway": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"}, catalog_url=dead,
                   orders_url=dead, notify_url=dead, rate_limits=LIMITS, redis_url="")
    with serve_as_in_production(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def assert_limited(resp: httpx.Response, policy: str) -> None:
    assert resp.status_code == 429, (resp.status_code, resp.text[:200])
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["policy"] == policy
    assert 0 < int(resp.headers["retry-after"]) <= 60


def test_sign_in_and_order_limits_hold_against_spoofed_addresses_and_spellings(gateway) -> None:
    gw = gateway
    # Sign-up: three from this address, however the fourth says where it comes from.
    codes = [gw.post("/api/v1/auth/register", headers=spoofed(i), json={
        "role": "buyer", "name": "Khách", "phone": f"091234567{i}", "password": PASSWORD}).status_code
        for i in range(4)]
    assert codes == [201, 201, 201, 429], codes

    # Sign-in to one account: the fourth try is refused, whichever spelling of the phone and address.
    spellings = ["0912345670", "+84912345670", "0912 345 670", "(+84) 0912345670"]
    codes = [gw.post("/api/v1/auth/token", headers=spoofed(i), json={"login": login, "password": "Sai-mat-khau-9"}
                     ).status_code for i, login in enumerate(spellings)]
    assert codes == [401, 401, 401, 429], codes
    assert_limited(gw.post("/api/v1/auth/token", json={"login": "0912345670", "password": PASSWORD}),
                   "login-account")  # the right password too, until the window ends
    # Per address: other accounts and refreshes share this address's six tries (five are spent).
    other = gw.post("/api/v1/auth/token", headers=spoofed(7), json={"login": "0912345671", "password": "Sai-9x-abc"})
    assert other.status_code == 401, other.text
    assert_limited(gw.post("/api/v1/auth/refresh", headers=spoofed(9), json={"refresh_token": "x" * 40}),
                   "login-ip")
    assert_limited(gw.post("/api/v1/auth/token", headers=spoofed(8), json={"login": "0912345672",
                                                                           "password": PASSWORD}), "login-ip")

    # Orders: three per address and window, counted before the orders service is asked (it is down:
    # 503), on every spelling of the path.
    body = {**ORDER, "lines": [{"variant_id": 1, "quantity": 1}]}
    paths = ["/api/v1/orders", "/api/v1/orders/", "/api/v1/checkouts", "/api/v1/orders?x=1"]
    codes = [gw.post(path, json=body, headers={**spoofed(i), "Idempotency-Key": f"k-{i}"}).status_code
             for i, path in enumerate(paths)]
    assert codes == [503, 503, 503, 429], codes
    assert_limited(gw.post("/api/v1/checkouts/", json=body, headers={"X-Forwarded-For": "1.2.3.4"}), "order-ip")
    # Reading orders is not placing them.
    assert gw.get("/api/v1/orders").status_code == 503


def test_the_served_apps_take_the_client_address_from_the_connection() -> None:
    """``python -m <app> serve`` starts uvicorn with ``proxy_headers=False``: were it left to uvicorn's
    default, ``X-Forwarded-For`` from an allowed peer would choose the address every limit counts by."""
    tree = ast.parse(inspect.getsource(cli.run_cli))
    # The options dicts run_cli builds for uvicorn, by name (``options = {...}``).
    dicts = {node.targets[0].id: node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
             and isinstance(node.value, ast.Dict) and isinstance(node.targets[0], ast.Name)}
    calls = [node for node in ast.walk(tree)
             if isinstance(node, ast.Call) and ast.unparse(node.func) in ("uvicorn.run", "uvicorn.Config")]
    assert calls, "run_cli no longer starts uvicorn: check how the served apps take the client address"
    for call in calls:  # uvicorn.run(...) and uvicorn.Config(...) for the shared port alike
        given = {k.arg: k.value for k in call.keywords if k.arg}
        for spread in (k.value for k in call.keywords if k.arg is None):  # **options
            assert isinstance(spread, ast.Name) and spread.id in dicts, ast.unparse(call)
            table = dicts[spread.id]
            given |= {ast.literal_eval(k): v for k, v in zip(table.keys, table.values, strict=True) if k is not None}
        assert "proxy_headers" in given and ast.literal_eval(given["proxy_headers"]) is False, ast.unparse(call)
