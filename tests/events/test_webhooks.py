"""Webhooks for integrators: Standard Webhooks signatures, the SSRF guard at registration and at send,
retries with the same webhook-id, 410 and long failure disabling an endpoint, the delivery log,
redelivery, and who may see what. Deliveries go to a real local receiver (a thread), events come
from orders placed through the stack (HTTP push)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import inspect
import ipaddress
import json
import threading
import time
import uuid
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from common.crypto import FieldCipher
from common.db import Database
from services.notify.webhooks import described, signing, ssrf
from services.notify.webhooks.models import WebhookEndpoint
from tests.apps import make_app
from tests.conftest import asgi_client
from tests.events.stack import GROWER, GROWER_ID, stack
from tests.support.auth import auth
from tests.support.servers import serve_in_thread

FAST = {"webhooks_allow_loopback": True, "webhooks_retry_schedule": [0, 0.3, 0.3, 0.3, 0.3, 0.3]}


# --- a receiver, as an integrator would run one -----------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every request; answers each path from its script (status, headers), then 200."""

    requests: list[Received] = field(default_factory=list)
    script: dict[str, list[tuple[int, dict]]] = field(default_factory=dict)
    always: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            path = request.url.path
            with self.lock:
                self.requests.append(Received(path, dict(request.headers), body))
                queued = self.script.get(path)
                status, headers = queued.pop(0) if queued else (self.always.get(path, 200), {})
            return Response(status_code=status, headers=headers)

        return Starlette(routes=[Route("/{path:path}", hook, methods=["GET", "POST"])])

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


@contextlib.contextmanager
def receiver():
    r = Receiver()
    with serve_in_thread(r.app()) as url:
        yield r, url


def verify(secret: str, got: Received, tolerance: int = 300) -> bool:
    """The receiver's check, written from the spec (not with our own signing module)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, ts = got.headers["webhook-id"], got.headers["webhook-timestamp"]
    if abs(time.time() - int(ts)) > tolerance:
        return False
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + got.body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    return any(hmac.compare_digest(expected, sig) for sig in got.headers["webhook-signature"].split(" "))


async def eventually(check, timeout: float = 10.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        await asyncio.sleep(0.05)


async def register(client, url: str, types: list[str], headers=GROWER) -> dict:
    resp = await client.post("/api/v1/webhooks", json={"url": url, "event_types": types}, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def order(s) -> dict:
    resp = await s.place(quantity=2)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def deliveries(client, endpoint_id: int, headers=GROWER) -> list[dict]:
    resp = await client.get(f"/api/v1/webhooks/{endpoint_id}/deliveries", headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


# --- signatures and addresses (no database) ---------------------------------------------------------


def test_signature_matches_the_spec_example() -> None:
    # The test vector of the Standard Webhooks libraries (libraries/python/tests/test_webhooks.py).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, timestamp, payload = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert signing.sign(secret, msg_id, timestamp, payload) == expected
    assert signing.sign(secret.removeprefix("whsec_"), msg_id, timestamp, payload) == expected
    headers = signing.headers([signing.new_secret(), secret], msg_id, payload, timestamp)
    assert headers["webhook-id"] == msg_id and headers["webhook-timestamp"] == "1614265330"
    assert headers["webhook-signature"].split(" ")[1] == expected
    assert signing.verify(secret, headers, payload, now=timestamp + 10)
    assert not signing.verify(secret, headers, payload + b" ", now=timestamp + 10)
    assert not signing.verify(secret, headers, payload, now=timestamp + 301)  # a replay, too late


def test_secrets_are_whsec_and_32_random_bytes() -> None:
    one, two = signing.new_secret(), signing.new_secret()
    assert one.startswith("whsec_") and one != two
    assert len(signing.secret_key(one)) == 32


@pytest.mark.parametrize("address, allowed", [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True), ("93.184.216.34", True),
    ("127.0.0.1", False), ("127.8.9.1", False), ("::1", False), ("10.0.0.1", False), ("172.16.5.4", False),
    ("192.168.1.1", False), ("fd12:3456::1", False), ("169.254.169.254", False), ("169.254.1.1", False),
    ("fe80::1", False), ("fd00:ec2::254", False), ("100.64.0.1", False), ("100.100.100.200", False),
    ("0.0.0.0", False), ("::", False), ("224.0.0.1", False), ("ff02::1", False), ("240.0.0.1", False),
    ("255.255.255.255", False), ("192.0.2.1", False), ("198.18.0.1", False),
    ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False), ("::ffff:8.8.8.8", True),
    ("64:ff9b::7f00:1", False), ("2002:a00:1::", False), ("2001:db8::1", False),
])
def test_which_addresses_may_receive_webhooks(address: str, allowed: bool) -> None:
    ip = ipaddress.ip_address(address)
    assert (ssrf.address_problem(ip) is None) is allowed
    loopback_ok = ssrf.address_problem(ip, allow_loopback=True) is None
    assert loopback_ok is (allowed or address in ("127.0.0.1", "127.8.9.1", "::1"))


# --- registration ---------------------------------------------------------------------------------

REFUSED = [
    "http://127.0.0.1/hook", "http://localhost/hook", "http://127.1/hook", "http://0x7f.1/hook",
    "http://2130706433/hook", "http://10.0.0.1/hook", "http://[::1]/hook",
    "http://169.254.169.254/latest/meta-data", "http://[::ffff:127.0.0.1]/hook", "http://[fd00:ec2::254]/",
    "http://100.64.0.1/", "http://0.0.0.0:8080/", "http://user:pw@example.com/hook", "ftp://example.com/hook",
    "http://nowhere.invalid/hook", "https://8.8.8.8:70000/", "http://exa mple.com/", "https://8.8.8.8/#frag",
]


async def test_registration_refuses_urls_that_reach_inside(db_urls) -> None:
    app = make_app("notify", db_urls)
    async with asgi_client(app) as client:
        for url in REFUSED:
            resp = await client.post("/api/v1/webhooks", json={"url": url, "event_types": ["order.placed"]},
                                     headers=GROWER)
            assert resp.status_code == 422, (url, resp.text)
            assert resp.headers["content-type"] == "application/problem+json"
            problem = resp.json()
            assert problem["errors"][0]["field"] == "body.url", (url, problem)
        bad_type = await client.post("/api/v1/webhooks", headers=GROWER,
                                     json={"url": "https://8.8.8.8/h", "event_types": ["order.lost"]})
        assert bad_type.status_code == 422 and bad_type.json()["errors"][0]["field"].startswith("body.event_types")
        # A public address is fine (nothing is sent: no event comes).
        ok = await register(client, "https://8.8.8.8/h", ["order.placed", "order.placed", "stock.low"])
        assert ok["event_types"] == ["order.placed", "stock.low"] and ok["secret"].startswith("whsec_")
        # Changing the URL goes through the same guard.
        moved = await client.patch(f"/api/v1/webhooks/{ok['id']}", json={"url": "http://[::1]:8080/"},
                                   headers=GROWER)
        assert moved.status_code == 422


async def test_loopback_only_with_the_development_setting_and_http_only_in_development(db_urls) -> None:
    async with asgi_client(make_app("notify", db_urls, webhooks_allow_loopback=True)) as client:
        await register(client, "http://127.0.0.1:9/hook", ["order.placed"])
        await register(client, "http://localhost:9/hook", ["order.placed"])
        for url in ("http://10.0.0.1/", "http://[::ffff:127.0.0.1]/", "http://169.254.169.254/"):
            resp = await client.post("/api/v1/webhooks", json={"url": url, "event_types": ["stock.low"]},
                                     headers=GROWER)
            assert resp.status_code == 422, url
    secrets = {"service_token": "s" * 40, "data_key": "d" * 40}
    async with asgi_client(make_app("notify", db_urls, environment="test", **secrets)) as client:
        plain = await client.post("/api/v1/webhooks", json={"url": "http://8.8.8.8/h", "event_types": ["stock.low"]},
                                  headers=GROWER)
        assert plain.status_code == 422 and "https://" in plain.json()["errors"][0]["message"]
        await register(client, "https://8.8.8.8/h", ["stock.low"])


async def test_a_refused_loopback_receiver_names_the_switch_that_allows_it(db_urls) -> None:
    async with asgi_client(make_app("notify", db_urls)) as client:
        for url in ("http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://[::1]:9/"):
            resp = await client.post("/api/v1/webhooks", json={"url": url, "event_types": ["stock.low"]},
                                     headers=GROWER)
            assert resp.status_code == 422, url
            error = resp.json()["errors"][0]
            assert error["field"] == "body.url" and "NOTIFY_WEBHOOKS_ALLOW_LOOPBACK=true" in error["message"], error
        # Another refused address is not a loopback one: no switch allows it, none is named.
        private = await client.post("/api/v1/webhooks", json={"url": "http://10.0.0.1/", "event_types": ["stock.low"]},
                                    headers=GROWER)
        assert private.status_code == 422 and "ALLOW_LOOPBACK" not in private.text


def test_loopback_setting_is_refused_in_production(monkeypatch) -> None:
    from pydantic import ValidationError

    from services.notify.settings import NotifySettings
    from tests.apps import PUBLIC_KEY

    for name, value in {"ENVIRONMENT": "production", "JWT_PUBLIC_KEY": PUBLIC_KEY, "SERVICE_TOKEN": "s" * 40,
                        "NOTIFY_DATA_KEY": "d" * 40}.items():
        monkeypatch.setenv(name, value)
    assert NotifySettings().webhooks_allow_loopback is False
    monkeypatch.setenv("NOTIFY_WEBHOOKS_ALLOW_LOOPBACK", "true")
    with pytest.raises(ValidationError, match="NOTIFY_WEBHOOKS_ALLOW_LOOPBACK"):
        NotifySettings()


# --- delivery through the stack -------------------------------------------------------------------


async def test_an_order_reaches_the_endpoint_signed_retried_with_one_id_and_redelivered(db_urls) -> None:
    with receiver() as (rcv, base):
        rcv.script["/hook"] = [(500, {})]  # the first try fails, the retry succeeds
        async with stack(db_urls, "http", **FAST) as s:
            endpoint = await register(s.notify, f"{base}/hook", ["order.placed"])
            other = await register(s.notify, f"{base}/stock", ["stock.low"])
            secret = endpoint["secret"]
            shown = (await s.notify.get(f"/api/v1/webhooks/{endpoint['id']}", headers=GROWER)).json()
            assert "secret" not in shown and shown["active"] is True
            # At rest the secret is encrypted with NOTIFY_DATA_KEY (read on a connection of this loop's own).
            db = Database(db_urls["notify"], name="notify-test")
            try:
                async with db.sessionmaker() as session:
                    stored = await session.scalar(select(WebhookEndpoint.secret_encrypted)
                                                  .where(WebhookEndpoint.id == endpoint["id"]))
            finally:
                await db.dispose()
            assert secret not in stored
            key = s.apps["notify"].state.settings.data_key.get_secret_value()
            assert FieldCipher(key).decrypt(stored) == secret

            placed = await order(s)
            tries = await eventually(lambda: len(rcv.at("/hook")) >= 2 and rcv.at("/hook"), what="a retry")
            first, second = tries[:2]
            assert first.headers["webhook-id"] == second.headers["webhook-id"]
            assert first.headers["webhook-id"].startswith("msg_")
            assert first.body == second.body
            assert all(verify(secret, t) for t in (first, second))
            assert not verify(signing.new_secret(), first)
            # As an integrator verifies it: with the standardwebhooks package, on the raw body; and the
            # payload is the one the OpenAPI document's `webhooks` section describes.
            from standardwebhooks.webhooks import Webhook

            assert Webhook(secret).verify(second.body, dict(second.headers))["data"]["code"] == placed["code"]
            with pytest.raises(Exception):  # noqa: B017 - the library's own WebhookVerificationError
                Webhook(signing.new_secret()).verify(second.body, dict(second.headers))
            described.OrderEventPayload.model_validate_json(second.body)
            body = second.json
            assert body["type"] == "order.placed" and body["data"]["code"] == placed["code"]
            assert body["timestamp"].endswith("Z") and body["data"]["total"] == placed["total"]
            assert second.headers["content-type"] == "application/json"

            log = await eventually(lambda: _succeeded(s, endpoint["id"]), what="the delivery log")
            assert log["webhook_id"] == first.headers["webhook-id"] and log["attempts"] == 2
            assert [a["status_code"] for a in log["log"]] == [500, 200]
            assert log["log"][0]["error"] == "HTTP 500" and log["event_type"] == "order.placed"
            assert await deliveries(s.notify, other["id"]) == []  # not subscribed to order.placed
            assert rcv.at("/stock") == []

            # Redelivery: sent again now, the same webhook-id, one more entry in the log.
            again = await s.notify.post(f"/api/v1/webhooks/{endpoint['id']}/deliveries/{log['id']}/redeliver",
                                        headers=GROWER)
            assert again.status_code == 202, again.text
            third = (await eventually(lambda: len(rcv.at("/hook")) >= 3 and rcv.at("/hook")))[2]
            assert third.headers["webhook-id"] == first.headers["webhook-id"] and verify(secret, third)
            redone = await eventually(lambda: _succeeded(s, endpoint["id"], tries=3))
            assert [a["status_code"] for a in redone["log"]] == [500, 200, 200]

            # A new secret: shown once; for a while both sign, so receivers can switch over.
            rotated = await s.notify.post(f"/api/v1/webhooks/{endpoint['id']}/rotate-secret", headers=GROWER)
            new_secret = rotated.json()["secret"]
            assert new_secret != secret
            ping = await s.notify.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=GROWER)
            assert ping.status_code == 202 and ping.json()["event_type"] == "webhook.test"
            test = (await eventually(lambda: len(rcv.at("/hook")) >= 4 and rcv.at("/hook")))[3]
            assert test.json["type"] == "webhook.test"
            described.TestPayload.model_validate_json(test.body)
            assert len(test.headers["webhook-signature"].split(" ")) == 2
            assert verify(new_secret, test) and verify(secret, test)


async def _succeeded(s, endpoint_id: int, tries: int = 2) -> dict | None:
    items = [d for d in await deliveries(s.notify, endpoint_id) if d["event_type"] == "order.placed"]
    if items and items[0]["state"] == "succeeded" and len(items[0]["log"]) >= tries:
        return items[0]
    return None


async def _endpoint(s, endpoint_id: int) -> dict:
    return (await s.notify.get(f"/api/v1/webhooks/{endpoint_id}", headers=GROWER)).json()


async def _webhook_notices(s) -> list[dict]:
    return [i for i in (await s.inbox())["items"] if i["type"] == "webhook.disabled"]


async def test_410_gone_disables_the_endpoint(db_urls) -> None:
    with receiver() as (rcv, base):
        rcv.script["/gone"] = [(410, {})]
        async with stack(db_urls, "http", **FAST) as s:
            endpoint = await register(s.notify, f"{base}/gone", ["order.placed"])
            await order(s)
            gone = await eventually(lambda: _disabled(s, endpoint["id"]), what="disabling on 410")
            assert gone["disabled_reason"] == "410 Gone" and gone["disabled_at"]
            notice = await eventually(lambda: _webhook_notices(s))
            assert endpoint["url"] in notice[0]["title"] and "410" in notice[0]["body"]
            [delivery] = await deliveries(s.notify, endpoint["id"])
            assert delivery["state"] == "dead" and delivery["last_status"] == 410
            # No more deliveries to it, and no redelivery while it is disabled.
            await order(s)
            await s.wait_inbox(3)  # both orders and the notice: the second event has been handled
            assert len(await deliveries(s.notify, endpoint["id"])) == 1
            url = f"/api/v1/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/redeliver"
            assert (await s.notify.post(url, headers=GROWER)).status_code == 409
            assert len(rcv.at("/gone")) == 1
            # Enabled again by its owner, the dead delivery can be sent again.
            enabled = await s.notify.patch(f"/api/v1/webhooks/{endpoint['id']}", json={"active": True},
                                           headers=GROWER)
            assert enabled.json()["active"] is True and enabled.json()["disabled_reason"] is None
            assert (await s.notify.post(url, headers=GROWER)).status_code == 202
            await eventually(lambda: len(rcv.at("/gone")) == 2)


async def _disabled(s, endpoint_id: int) -> dict | None:
    found = await _endpoint(s, endpoint_id)
    return None if found["active"] else found


async def test_redirects_are_not_followed_and_the_address_is_checked_again_at_send(db_urls) -> None:
    with receiver() as (rcv, base):
        rcv.script["/moved"] = [(302, {"Location": f"{base}/elsewhere"})]
        schedule = {**FAST, "webhooks_retry_schedule": [0, 1.0, 1.0, 60]}
        async with stack(db_urls, "http", **schedule) as s:
            endpoint = await register(s.notify, f"{base}/moved", ["order.placed"])
            await order(s)
            failed = await eventually(lambda: _state(s, endpoint["id"], "failed"), what="the redirect")
            assert failed["last_status"] == 302 and "not followed" in failed["last_error"]
            assert rcv.at("/elsewhere") == []
            # The host now resolves to an address that is not allowed (here: loopback no longer is).
            s.apps["notify"].state.settings.webhooks_allow_loopback = False
            refused = await eventually(lambda: _tries(s, endpoint["id"], 2), what="the second try")
            assert refused["log"][1]["status_code"] is None
            assert "loopback" in refused["log"][1]["error"] and refused["log"][1]["error"].startswith("not sent")
            assert len(rcv.at("/moved")) == 1 and rcv.at("/elsewhere") == []


async def _state(s, endpoint_id: int, state: str) -> dict | None:
    items = await deliveries(s.notify, endpoint_id)
    return items[0] if items and items[0]["state"] == state else None


async def _tries(s, endpoint_id: int, count: int) -> dict | None:
    items = await deliveries(s.notify, endpoint_id)
    return items[0] if items and len(items[0]["log"]) >= count else None


async def test_an_endpoint_failing_too_long_is_disabled_and_its_owner_told(db_urls) -> None:
    with receiver() as (rcv, base):
        rcv.always["/down"] = 503
        settings = {**FAST, "webhooks_disable_after": 0.5, "webhooks_retry_schedule": [0, 0.4, 0.4, 0.4, 0.4, 60]}
        async with stack(db_urls, "http", **settings) as s:
            endpoint = await register(s.notify, f"{base}/down", ["order.placed"])
            await order(s)
            gone = await eventually(lambda: _disabled(s, endpoint["id"]), what="disabling after long failure")
            assert gone["disabled_reason"].startswith("failing since") and "HTTP 503" in gone["disabled_reason"]
            assert 2 <= len(rcv.at("/down")) <= 4
            notice = await eventually(lambda: _webhook_notices(s), what="the owner's notification")
            assert notice[0]["data"]["endpoint_id"] == endpoint["id"] and "failing since" in notice[0]["body"]
            [delivery] = await deliveries(s.notify, endpoint["id"])
            assert delivery["state"] == "dead" and delivery["last_error"].startswith("endpoint disabled")
            assert [a["status_code"] for a in delivery["log"]] == [503] * len(delivery["log"])


async def test_webhooks_are_their_owner_s_alone(db_urls) -> None:
    with receiver() as (rcv, base):
        async with asgi_client(make_app("notify", db_urls, **FAST)) as client:
            endpoint = await register(client, f"{base}/mine", ["order.placed", "stock.low"])
            eid = endpoint["id"]
            ping = await client.post(f"/api/v1/webhooks/{eid}/test", headers=GROWER)
            delivery = ping.json()["id"]
            await eventually(lambda: rcv.at("/mine"))
            other = auth(f"grower-{uuid.uuid4().hex[:6]}")
            assert (await client.get("/api/v1/webhooks", headers=other)).json()["items"] == []
            for method, path, body in [
                ("GET", f"/api/v1/webhooks/{eid}", None),
                ("PATCH", f"/api/v1/webhooks/{eid}", {"description": "mine now"}),
                ("DELETE", f"/api/v1/webhooks/{eid}", None),
                ("POST", f"/api/v1/webhooks/{eid}/rotate-secret", None),
                ("POST", f"/api/v1/webhooks/{eid}/test", None),
                ("GET", f"/api/v1/webhooks/{eid}/deliveries", None),
                ("GET", f"/api/v1/webhooks/{eid}/deliveries/{delivery}", None),
                ("POST", f"/api/v1/webhooks/{eid}/deliveries/{delivery}/redeliver", None),
            ]:
                resp = await client.request(method, path, json=body, headers=other)
                assert resp.status_code == 404, (method, path, resp.text)
                assert resp.headers["content-type"] == "application/problem+json"
            assert len(rcv.at("/mine")) == 1  # the other grower's test and redeliver sent nothing
            # API keys need the webhooks scope; buyers have no webhooks; nobody signed in gets a 401.
            no_scope = auth(GROWER_ID, kind="api_key", scopes=["orders:read", "catalog:write"])
            for method, path in [("GET", "/api/v1/webhooks"), ("GET", f"/api/v1/webhooks/{eid}"),
                                 ("POST", f"/api/v1/webhooks/{eid}/test")]:
                resp = await client.request(method, path, headers=no_scope)
                assert resp.status_code == 403 and resp.json()["scope"] == "webhooks", resp.text
            created = await client.post("/api/v1/webhooks", headers=no_scope,
                                        json={"url": f"{base}/k", "event_types": ["stock.low"]})
            assert created.status_code == 403
            with_scope = auth(GROWER_ID, kind="api_key", scopes=["webhooks"])
            listed = (await client.get("/api/v1/webhooks", headers=with_scope)).json()["items"]
            assert [e["id"] for e in listed] == [eid]
            assert (await client.get("/api/v1/webhooks", headers=auth("buyer-1", role="buyer"))).status_code == 403
            assert (await client.get("/api/v1/webhooks")).status_code == 401
            # The owner's own: changes, a limit of 10, deletion with the log.
            changed = await client.patch(f"/api/v1/webhooks/{eid}", headers=GROWER,
                                         json={"description": "Kho Cần Thơ", "event_types": ["stock.low"]})
            assert changed.json()["description"] == "Kho Cần Thơ" and changed.json()["event_types"] == ["stock.low"]
            for i in range(9):
                await register(client, f"{base}/n{i}", ["stock.low"], headers=with_scope)
            eleventh = await client.post("/api/v1/webhooks", headers=GROWER,
                                         json={"url": f"{base}/n10", "event_types": ["stock.low"]})
            assert eleventh.status_code == 409 and eleventh.json()["type"] == "http://localhost:8000/problems/webhook-limit"
            page = (await client.get("/api/v1/webhooks", params={"limit": 4}, headers=GROWER)).json()
            assert len(page["items"]) == 4 and page["next_cursor"]
            assert (await client.delete(f"/api/v1/webhooks/{eid}", headers=GROWER)).status_code == 204
            assert (await client.get(f"/api/v1/webhooks/{eid}", headers=GROWER)).status_code == 404


async def test_endpoints_go_with_the_account_s_export_and_erasure(db_urls) -> None:
    app = make_app("notify", db_urls)
    async with asgi_client(app) as client:
        endpoint = await register(client, "https://8.8.8.8/hook", ["order.placed"])
        service = {"X-Service-Token": app.state.settings.service_token.get_secret_value()}
        exported = await client.get(f"/internal/accounts/{GROWER_ID}/export", headers=service)
        assert exported.status_code == 200, exported.text
        assert [e["url"] for e in exported.json()["webhook_endpoints"]] == ["https://8.8.8.8/hook"]
        assert endpoint["secret"] not in exported.text and "secret" not in exported.text
        assert (await client.delete(f"/internal/accounts/{GROWER_ID}", headers=service)).status_code == 200
        assert (await client.get("/api/v1/webhooks", headers=GROWER)).json()["items"] == []


async def test_a_delivery_is_dead_when_the_schedule_is_spent_and_the_endpoint_stays(db_urls) -> None:
    with receiver() as (rcv, base):
        rcv.always["/flaky"] = 500
        settings = {**FAST, "webhooks_retry_schedule": [0, 0.2, 0.2]}
        async with asgi_client(make_app("notify", db_urls, **settings)) as client:
            endpoint = await register(client, f"{base}/flaky", ["order.placed"])
            delivery = (await client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=GROWER)).json()

            async def dead() -> dict | None:
                found = (await client.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries/{delivery['id']}",
                                          headers=GROWER)).json()
                return found if found["state"] == "dead" else None

            found = await eventually(dead, what="the delivery giving up")
            assert found["attempts"] == 3 and [a["status_code"] for a in found["log"]] == [500] * 3
            assert found["next_attempt_at"] is None and len(rcv.at("/flaky")) == 3
            assert len({r.headers["webhook-id"] for r in rcv.at("/flaky")}) == 1
            still = (await client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=GROWER)).json()
            assert still["active"] is True and still["failing_since"] is not None
            listed = await client.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries", params={"state": "dead"},
                                      headers=GROWER)
            assert [d["id"] for d in listed.json()["items"]] == [delivery["id"]]
