"""Web Push: a local server acts as the push service; the test holds the device's keys, decrypts what
it receives (RFC 8291, aes128gcm) and checks the payload and the VAPID signature. A 500 is retried; a
410 removes the subscription. Orders are placed through the stack (catalog, orders, notify)."""

from __future__ import annotations

import base64
import json
import os

import http_ece
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from common.keys import b64url, unb64url
from tests.events.stack import GROWER, stack
from tests.events.test_webhooks import eventually, receiver

LOOPBACK = {"webhooks_allow_loopback": True}


class Device:
    """What a browser keeps for one push subscription: its P-256 key pair and auth secret."""

    def __init__(self, endpoint: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.endpoint = endpoint

    def subscription(self) -> dict:
        public = self.key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return {"endpoint": self.endpoint, "expirationTime": None, "device": "Android · Chrome",
                "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)}}

    def decrypt(self, body: bytes) -> dict:
        return json.loads(http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"))


async def subscribe(s, device: Device) -> dict:
    resp = await s.notify.post("/api/v1/push/subscriptions", json=device.subscription(), headers=GROWER)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def subscriptions(s) -> list[dict]:
    resp = await s.notify.get("/api/v1/push/subscriptions", headers=GROWER)
    assert resp.status_code == 200, resp.text
    return resp.json()


def vapid_claims(authorization: str, public_key: str) -> dict:
    scheme, _, params = authorization.partition(" ")
    assert scheme == "vapid"
    fields = dict(p.strip().split("=", 1) for p in params.split(","))
    assert fields["k"] == public_key
    x, y = unb64url(public_key)[1:33], unb64url(public_key)[33:]
    pem_key = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                            ec.SECP256R1()).public_key()
    return jwt.decode(fields["t"], pem_key, algorithms=["ES256"], options={"verify_aud": False})


async def test_a_new_order_is_pushed_encrypted_and_signed_and_a_500_is_retried(db_urls) -> None:
    with receiver() as (push_service, url):
        push_service.script["/push/phone"] = [(500, {})]  # the first try fails: retried after a backoff
        async with stack(db_urls, "http", **LOOPBACK) as s:
            key = (await s.notify.get("/api/v1/push/key")).json()["public_key"]
            assert len(unb64url(key)) == 65
            phone = Device(f"{url}/push/phone")
            sub = await subscribe(s, phone)
            assert sub["device"] == "Android · Chrome" and sub["last_sent_at"] is None
            placed = await s.place(quantity=2)
            assert placed.status_code == 201, placed.text
            order = placed.json()
            got = await eventually(lambda: len(push_service.at("/push/phone")) >= 2, 15, "the retried push")
            assert got
            first, second = push_service.at("/push/phone")[:2]
            for request in (first, second):
                assert request.headers["content-encoding"] == "aes128gcm"
                assert int(request.headers["ttl"]) > 0
                claims = vapid_claims(request.headers["authorization"], key)
                assert claims["aud"] == url and claims["sub"].startswith("mailto:")
            assert b"CV-" not in second.body  # encrypted
            payload = phone.decrypt(second.body)
            assert payload["type"] == "order.placed"
            assert payload["title"].startswith(f"Đơn mới {order['code']}")
            assert payload["url"] == f"/grower/orders/{order['id']}"
            assert phone.decrypt(first.body)["event_id"] == payload["event_id"]  # the same push, tried again
            listed = await eventually(lambda: _sent(s), 5, "last_sent_at")
            assert listed[0]["id"] == sub["id"]


async def _sent(s) -> list[dict] | None:
    listed = await subscriptions(s)
    return listed if listed and listed[0]["last_sent_at"] else None


async def test_low_stock_is_pushed_with_the_variety_to_open(db_urls) -> None:
    with receiver() as (push_service, url):
        async with stack(db_urls, "http", **LOOPBACK) as s:
            phone = Device(f"{url}/push/phone")
            await subscribe(s, phone)
            first, pots = s.product["variants"]
            keep = ("id", "label", "retail_price", "wholesale_tiers", "min_order_quantity", "stock")
            await s.catalog.patch(f"/api/v1/products/{s.product['id']}", headers=GROWER, json={"variants": [
                {k: first[k] for k in keep}, {"id": pots["id"], "label": pots["label"],
                                              "retail_price": pots["retail_price"], "stock": 5,
                                              "low_stock_threshold": 3}]})
            assert (await s.place(quantity=3, variant=1)).status_code == 201

            def pushed() -> dict | None:
                got = [phone.decrypt(r.body) for r in push_service.at("/push/phone")]
                return next((p for p in got if p["type"] == "stock.low"), None)

            low = await eventually(pushed, 10, "the low-stock push")
            assert low["title"].startswith("Sắp hết hàng:") and low["url"] == f"/grower/products/{s.product['id']}"


async def test_a_subscription_the_push_service_calls_gone_is_removed(db_urls) -> None:
    with receiver() as (push_service, url):
        push_service.always["/push/old"] = 410
        async with stack(db_urls, "http", **LOOPBACK) as s:
            old, kept = Device(f"{url}/push/old"), Device(f"{url}/push/kept")
            await subscribe(s, old)
            await subscribe(s, kept)
            assert len(await subscriptions(s)) == 2
            assert (await s.place()).status_code == 201
            await eventually(lambda: push_service.at("/push/old") and push_service.at("/push/kept"), 10, "both pushes")
            remaining = await eventually(lambda: _only(s, kept.endpoint), 5, "the gone subscription removed")
            assert len(remaining) == 1
            assert len(push_service.at("/push/old")) == 1  # not retried


async def _only(s, endpoint: str) -> list[dict] | None:
    listed = await subscriptions(s)
    return listed if [x["endpoint"] for x in listed] == [endpoint] else None


async def test_subscriptions_refuse_private_hosts_and_bad_keys(db_urls) -> None:
    async with stack(db_urls, "http") as s:  # no loopback allowance: as in production
        for endpoint in ("http://127.0.0.1:9/push", "https://10.0.0.1/push", "https://169.254.169.254/x",
                         "ftp://fcm.example/x", "https://user:pw@8.8.8.8/x"):
            device = Device(endpoint)
            resp = await s.notify.post("/api/v1/push/subscriptions", json=device.subscription(), headers=GROWER)
            assert resp.status_code == 422, (endpoint, resp.text)
            assert resp.json()["errors"][0]["field"] == "body.endpoint"
        bad = Device("https://8.8.8.8/push").subscription()
        bad["keys"]["auth"] = base64.urlsafe_b64encode(b"x" * 12).decode()
        resp = await s.notify.post("/api/v1/push/subscriptions", json=bad, headers=GROWER)
        assert resp.status_code == 422
        ok = await subscribe(s, Device("https://8.8.8.8/push"))
        assert (await s.notify.delete(f"/api/v1/push/subscriptions/{ok['id']}")).status_code == 401
        assert (await s.notify.delete(f"/api/v1/push/subscriptions/{ok['id']}", headers=GROWER)).status_code == 204
        assert await subscriptions(s) == []


def test_the_vapid_key_is_read_from_the_secrets_folder_and_blank_means_off(tmp_path, monkeypatch) -> None:
    from services.notify.push import vapid
    from services.notify.settings import NotifySettings

    key = vapid.new_private_key()
    (tmp_path / "NOTIFY_VAPID_PRIVATE_KEY").write_text(key + "\n")
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path))
    production = {"environment": "production", "jwt_public_key": "k", "service_token": "s" * 40, "data_key": "d" * 40}
    settings = NotifySettings(**production)
    loaded = vapid.load(settings)
    assert loaded is not None and len(unb64url(vapid.public_key(loaded))) == 65
    monkeypatch.delenv("SECRETS_DIR")
    assert vapid.load(NotifySettings(**production, vapid_private_key="")) is None  # push off, not refused
