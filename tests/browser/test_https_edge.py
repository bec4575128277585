"""The HTTPS edge: Debian's caddy runs deploy/caddy/Caddyfile (``tls internal``) in front of the four
apps in production mode, the gateway trusting it as its one proxy (GATEWAY_TRUSTED_PROXIES).

- Chromium, trusting Caddy's local CA (added to its NSS database; no certificate error is ignored),
  signs a grower up and posts the shop form over HTTPS: the session and CSRF cookies are ``Secure``
  and the forms go through.
- Plain HTTP is redirected to HTTPS, and replies carry HSTS.
- Clients at different addresses (127.0.0.2, 127.0.0.3 …) have separate rate-limit counters, and a
  client forging X-Forwarded-For is still counted — and logged — as itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.settings import DEFAULT_RATE_LIMITS
from tests.apps import make_app
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, PHONE, chromium_installed
from tests.support.databases import require, sqlite_urls
from tests.support.fullstack import PASSWORD
from tests.support.servers import ROOT, free_port, serve_in_thread

CADDYFILE = ROOT / "deploy" / "caddy" / "Caddyfile"
CADDY = shutil.which("caddy")
CERTUTIL = shutil.which("certutil")
# Production mode: every secret real (32+ characters), the same on every app.
PRODUCTION = {"environment": "production", "service_token": "edge-service-token-" + "s" * 24}
DATA_KEYS = {"catalog": "edge-catalog-key-" + "c" * 24, "orders": "edge-orders-key-" + "o" * 24,
             "notify": "edge-notify-key-" + "n" * 24}
LIMITS = {**DEFAULT_RATE_LIMITS, "login-ip": (2, 60)}


@contextlib.contextmanager
def production_stack(tmp_path: Path, public_url: str) -> Iterator[dict[str, str]]:
    db = sqlite_urls(tmp_path)
    with contextlib.ExitStack() as running:
        urls = {}
        notify = make_app("notify", db, **PRODUCTION, data_key=DATA_KEYS["notify"], public_base_url=public_url)
        urls["notify"] = running.enter_context(serve_in_thread(notify))
        catalog = make_app("catalog", db, **PRODUCTION, data_key=DATA_KEYS["catalog"], public_base_url=public_url,
                           notify_url=urls["notify"], reservation_sweep_interval=0)
        urls["catalog"] = running.enter_context(serve_in_thread(catalog))
        orders = make_app("orders", db, **PRODUCTION, data_key=DATA_KEYS["orders"], public_base_url=public_url,
                          catalog_url=urls["catalog"], notify_url=urls["notify"], reconcile_interval=1)
        urls["orders"] = running.enter_context(serve_in_thread(orders))
        gateway = make_app("gateway", db, **PRODUCTION, metrics_token="edge-metrics-" + "m" * 30,
                           public_base_url=public_url, catalog_url=urls["catalog"], orders_url=urls["orders"],
                           notify_url=urls["notify"], rate_limits=LIMITS, trusted_proxies="127.0.0.1")
        urls["gateway"] = running.enter_context(serve_in_thread(gateway))
        yield urls


@contextlib.contextmanager
def caddy(tmp_path: Path, upstream: str) -> Iterator[dict]:
    """Debian's caddy on free ports, running the Caddyfile of the compose shape as it is."""
    http_port, https_port = free_port(), free_port()
    home = tmp_path / "caddy"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
           "XDG_CONFIG_HOME": str(home / "config"), "DOMAIN": "localhost", "CADDY_TLS": "internal",
           "HTTP_PORT": str(http_port), "HTTPS_PORT": str(https_port), "CADDY_ADMIN": "off",
           "UPSTREAM": upstream.removeprefix("http://")}
    log = (tmp_path / "caddy.log").open("wb")
    proc = subprocess.Popen([CADDY, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"], env=env,
                            cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    root = home / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "caddy.log").read_text()
            if root.exists():
                try:
                    httpx.get(f"https://localhost:{https_port}/healthz", verify=trusting(root), timeout=2)
                    break
                except httpx.HTTPError:
                    pass
            assert time.monotonic() < deadline, (tmp_path / "caddy.log").read_text()
            time.sleep(0.2)
        yield {"https": f"https://localhost:{https_port}", "http": f"http://localhost:{http_port}",
               "root": root}
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def client_from(address: str, base_url: str, root: Path) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=10,
                        transport=httpx.HTTPTransport(local_address=address, verify=trusting(root)))


def trusting(root: Path) -> ssl.SSLContext:
    """Certificates signed by Caddy's local CA, and by no one else."""
    return ssl.create_default_context(cafile=str(root))


def attempt(client: httpx.Client, forwarded: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return client.post("/api/v1/auth/refresh", json={"refresh_token": "cvr_" + "x" * 43},
                       headers=headers).status_code


@pytest.fixture
def edge_front(tmp_path, monkeypatch):
    """The production stack, then Caddy in front of its gateway."""
    require(CADDY is not None, "caddy is not installed (Debian: apt-get install -y caddy)")
    monkeypatch.setenv("CATALOG_MEDIA_DIR", str(tmp_path / "media"))
    with production_stack(tmp_path, "https://localhost") as urls, caddy(tmp_path, urls["gateway"]) as front:
        yield front, urls


def test_http_is_redirected_and_https_replies_carry_hsts(edge_front) -> None:
    front, _ = edge_front
    plain = httpx.get(front["http"] + "/grower/login", follow_redirects=False)
    assert plain.status_code in (301, 308) and plain.headers["location"].startswith("https://localhost")
    secure = httpx.get(front["https"] + "/grower/login", verify=trusting(front["root"]))
    assert secure.status_code == 200
    assert secure.headers["strict-transport-security"].startswith("max-age=31536000")
    assert "server" not in secure.headers


def test_clients_are_counted_by_their_own_address(edge_front, caplog) -> None:
    front, _ = edge_front
    caplog.set_level(logging.INFO, logger="http")
    with client_from("127.0.0.2", front["https"], front["root"]) as a, \
            client_from("127.0.0.3", front["https"], front["root"]) as b, \
            client_from("127.0.0.5", front["https"], front["root"]) as forger:
        assert [attempt(a) for _ in range(3)] == [401, 401, 429]
        assert attempt(b) == 401  # another address: its own counter, not the proxy's shared one
        # A new forged address each time: still counted as 127.0.0.5.
        assert [attempt(forger, f"203.0.113.{i}") for i in range(3)] == [401, 401, 429]
        assert attempt(forger, "127.0.0.3") == 429  # posing as b does not help…
        assert attempt(b) == 401  # …nor spend b's attempts
    clients = {r.client for r in caplog.records if r.name == "http" and getattr(r, "client", None)}
    assert {"127.0.0.2", "127.0.0.3", "127.0.0.5"} <= clients, clients
    assert not {c for c in clients if c.startswith("203.0.113.")}, clients


def _trust_in_chromium(home: Path, root: Path) -> None:
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run([CERTUTIL, "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True)
    subprocess.run([CERTUTIL, "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "caddy-local", "-i", str(root)],
                   check=True)


async def test_a_grower_signs_up_and_posts_a_form_over_https(edge_front, tmp_path, shot) -> None:
    require(chromium_installed(), f"Chromium is not installed at {CHROMIUM}")
    require(CERTUTIL is not None, "certutil is not installed (Debian: apt-get install -y libnss3-tools)")
    front, _ = edge_front
    home = tmp_path / "chromium-home"
    _trust_in_chromium(home, front["root"])
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                                           env={**os.environ, "HOME": str(home)})
        try:
            context = await browser.new_context(**PHONE)  # certificate errors are not ignored
            page = await context.new_page()
            base = front["https"]
            await page.goto(base + "/grower/signup")
            await page.get_by_label(re.compile("^Họ tên")).fill("Chị Sen")
            await page.get_by_label(re.compile("^Số điện thoại di động")).fill("0912 345 678")
            await page.get_by_label(re.compile("^Mật khẩu")).fill(PASSWORD)
            await page.get_by_role("button", name="Tạo tài khoản").click()
            await page.wait_for_url("**/grower/shop")
            cookies = await context.cookies(base)
            assert cookies and all(c["secure"] for c in cookies), cookies
            assert {"cv_session", "cv_csrf"} <= {c["name"] for c in cookies}, cookies

            await page.get_by_label(re.compile("^Tên cửa hàng")).fill("Vườn Súng Sa Đéc")
            await page.get_by_label(re.compile("^Số điện thoại cửa hàng")).fill("0912 345 678")
            await page.get_by_label(re.compile("^Tỉnh/thành phố")).select_option("82")
            await page.wait_for_function("() => document.querySelector('#ward_code').options.length > 10")
            await page.get_by_label(re.compile("^Phường/xã")).select_option("29869")
            await page.get_by_label(re.compile("^Số nhà, tên đường")).fill("12 Nguyễn Sinh Sắc")
            await page.get_by_label(re.compile("^Phí giao hàng")).fill("30.000")
            await page.get_by_role("button", name="Mở cửa hàng").click()
            await page.wait_for_url("**/grower/products")
            assert page.url.startswith("https://localhost:")
            await shot(page, "edge-https-products")
        finally:
            await browser.close()
