"""docs/operations.md, "Without Docker", run as written: its shell blocks make the databases and
export the settings, and the four apps started with exactly that environment work together.

Two things are changed from the text, and only these: the database names get this run's own prefix
(the machine's PostgreSQL is shared), and each app gets a free port with the ``*_URL`` settings
pointing at it (ports 8000–8003 may be taken). Everything else — the secrets, the keys, the URLs'
form, ``ENVIRONMENT=production`` — is what the recipe's own commands produce.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.databases import APPS, _admin, pg_reachable, require
from tests.support.processes import AppProcess
from tests.support.servers import ROOT, free_port

DOC = ROOT / "docs" / "operations.md"
MODULES = {"notify": "services.notify", "catalog": "services.catalog", "orders": "services.orders",
           "gateway": "gateway"}

def recipe_blocks() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Without Docker", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)

def _own_databases(block: str, prefix: str) -> str:
    block = re.sub(r"for db in gateway catalog orders notify;",
                   "for db in " + " ".join(prefix + a for a in APPS) + ";", block)
    return re.sub(r"(5432/)(gateway|catalog|orders|notify)\b", lambda m: m.group(1) + prefix + m.group(2), block)

def test_the_recipe_blocks_are_there() -> None:
    blocks = recipe_blocks()
    assert len(blocks) >= 2, "the section lost its shell blocks"
    assert "createdb" in blocks[0] and "export" in blocks[1]
    assert "…" not in blocks[0] + blocks[1], "a block holds a placeholder: it cannot run as written"
    assert not re.search(r"(GATEWAY|CATALOG|ORDERS|NOTIFY)_SERVICE_TOKEN", blocks[1]), \
        "the service token has one name, SERVICE_TOKEN"

@pytest.fixture
def recipe_env(tmp_path):
    require(pg_reachable() is None, pg_reachable() or "")
    prefix = f"cv_recipe_{uuid.uuid4().hex[:6]}_"
    made, exports = (_own_databases(b, prefix) for b in recipe_blocks()[:2])
    try:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", made], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", exports + "\nenv -0"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
        assert done.returncode == 0, done.stderr
        env = dict(item.split("=", 1) for item in done.stdout.split("\0") if "=" in item)
        yield {k: v for k, v in env.items() if k not in ("PWD", "SHLVL", "_", "OLDPWD")}
    finally:

        asyncio.run(_admin([f'DROP DATABASE IF EXISTS "{prefix}{a}" WITH (FORCE)' for a in APPS]))

def test_the_recipe_runs_as_written(recipe_env: dict[str, str], tmp_path) -> None:
    env = recipe_env
    assert env["ENVIRONMENT"] == "production" and env["EVENT_BUS_URL"].startswith("nats://")
    ports = {app: free_port() for app in MODULES}
    urls = {app: f"http://127.0.0.1:{port}" for app, port in ports.items()}
    wiring = {"CATALOG_NOTIFY_URL": urls["notify"], "ORDERS_CATALOG_URL": urls["catalog"],
              "ORDERS_NOTIFY_URL": urls["notify"], "GATEWAY_CATALOG_URL": urls["catalog"],
              "GATEWAY_ORDERS_URL": urls["orders"], "GATEWAY_NOTIFY_URL": urls["notify"]}
    procs = [AppProcess(module, {**env, **wiring}, tmp_path, ports[app]) for app, module in MODULES.items()]
    try:
        with ThreadPoolExecutor(len(procs)) as pool:  # each migrates first: start them side by side
            list(pool.map(AppProcess.start, procs))
        with httpx.Client(base_url=urls["gateway"], timeout=20) as gw:
            ready = gw.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["services"] == {"catalog": "ok", "orders": "ok", "notify": "ok"}
            _an_order_goes_through(gw)
            metrics = gw.get("/metrics", headers={"Authorization": f"Bearer {env['METRICS_TOKEN']}"})
            assert metrics.status_code == 200 and "http_requests_total" in metrics.text
            assert gw.get("/metrics", headers={"Authorization": f"Bearer {env['SERVICE_TOKEN']}"}).status_code == 404
    except BaseException:
        for proc in procs:
            print(f"--- {proc.module}\n{proc.tail()}")
        raise
    finally:
        for proc in reversed(procs):
            proc.stop()

def _an_order_goes_through(gw: httpx.Client) -> None:
    """Orders calls the catalog with the service token and encrypts with ORDERS_DATA_KEY: a 401
    between them, or orders refusing to start, fails here."""
    phone, password = f"09{uuid.uuid4().int % 10**8:08d}", "Sen-hong-Dong-Thap-7"
    made = gw.post("/api/v1/auth/register", json={"role": "grower", "name": "Chị Tư", "phone": phone,
                                                  "password": password})
    assert made.status_code == 201, made.text
    token = gw.post("/api/v1/auth/token", json={"login": phone, "password": password}).json()["access_token"]
    grower = {"Authorization": f"Bearer {token}"}
    shop = gw.post("/api/v1/shops", headers=grower, json={
        "name": "Vườn Sen Bà Tư", "description": "Sen và súng", "province_code": "92", "ward_code": "31135",
        "street": "12 Lê Lợi", "phone": "0912 345 678", "delivery": {"pickup": True, "flat_fee": 30000},
        "bank": {"bin": "970415", "account_number": "113366668888", "holder": "Nguyễn Thị Tư"}})
    assert shop.status_code == 201, shop.text
    product = gw.post("/api/v1/products", headers=grower, json={
        "name": "Súng Thái đỏ", "description": "Hoa đỏ", "category": "water_lily", "status": "active",
        "variants": [{"label": "Củ giống", "retail_price": 45000, "stock": 10, "min_order_quantity": 1}]})
    assert product.status_code == 201, product.text
    order = gw.post("/api/v1/orders", headers={"Idempotency-Key": uuid.uuid4().hex}, json={
        "lines": [{"variant_id": product.json()["variants"][0]["id"], "quantity": 2}],
        "contact": {"name": "Anh Tư", "phone": "0987 654 321"},
        "address": {"province_code": "92", "ward_code": "31135", "street": "9 Mậu Thân"},
        "payment_method": "bank_transfer", "consent": True})
    assert order.status_code == 201, order.text
    placed = order.json()
    qr = gw.get(f"/api/v1/orders/{placed['id']}/payment-qr", headers=grower)
    assert qr.status_code == 200, qr.text  # the account number, decrypted with ORDERS_DATA_KEY

