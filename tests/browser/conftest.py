"""Browser tests: the whole marketplace as real servers, driven by Debian's Chromium through Playwright.

Fixtures:

- ``stack``: notify, catalog, orders and the gateway as real servers on a fresh set of SQLite
  databases (``tests/support/fullstack.py``); public links and photo URLs point at this gateway.
- ``browser``: headless Chromium from ``/usr/bin/chromium`` (never Playwright's own download).
- ``page``: a phone (390×844 CSS pixels at 3×, touch, ``vi-VN``, Vietnam time); the console's
  errors and the page's uncaught exceptions collect in ``page.console_errors``.
- ``axe``: ``await axe(page)`` → the serious and critical accessibility violations axe-core finds.
- ``shot``: ``await shot(page, "buyer-01-shop")`` → a full-page PNG in ``var/screenshots/``.

Needs ``/usr/bin/chromium`` (Debian: ``apt-get install -y chromium``) and axe-core
(``npm ci --prefix tests/browser``). Without them a test is skipped with the reason, except under CI
(``CI=true``), where it fails.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.support.databases import require, sqlite_urls
from tests.support.fullstack import FullStack, full_stack

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# A mid-range Android phone held upright: what a grower or a buyer opens a shared link on.
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
    "locale": "vi-VN",
    "timezone_id": "Asia/Ho_Chi_Minh",
}
AXE_JS = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
AXE_IMPACTS = ("serious", "critical")
SCREENSHOTS = ROOT / "var" / "screenshots"


@pytest.fixture
async def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FullStack]:
    """The marketplace on this test's own SQLite databases; ``stack.urls["gateway"]`` is the front door."""
    # Uploaded photos stay in this test's folder (read when the catalog's settings are made).
    monkeypatch.setenv("CATALOG_MEDIA_DIR", str(tmp_path / "media"))
    async with full_stack(sqlite_urls(tmp_path)) as running:
        # The gateway's address is known only once it listens; the links the catalog and orders put
        # in their replies (shop and product pages, photos, tracking) are read per request.
        for name in ("catalog", "orders", "gateway"):
            running.apps[name].state.settings.public_base_url = running.urls["gateway"]
        yield running


def chromium_installed() -> bool:
    return CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)


@pytest.fixture
async def browser():
    require(chromium_installed(), f"Chromium is not installed at {CHROMIUM} (Debian: apt-get install -y chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser):
    """A new phone-sized context and page; ``page.console_errors`` lists what went wrong in it."""
    context = await browser.new_context(**PHONE)
    tab = await context.new_page()
    errors: list[str] = []

    def on_console(message) -> None:
        if message.type == "error":
            where = message.location or {}
            errors.append(f"console: {message.text} ({where.get('url', '?')}:{where.get('lineNumber', '?')})")

    tab.on("console", on_console)
    tab.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    tab.console_errors = errors
    try:
        yield tab
    finally:
        await context.close()


Violation = dict[str, object]


@pytest.fixture
def axe() -> Callable[..., Awaitable[list[Violation]]]:
    """``await axe(page)``: axe-core's serious and critical violations on the page as it is now, each
    ``{"id", "impact", "help", "targets"}``; ``[]`` when there are none."""
    require(AXE_JS.is_file(), f"axe-core is not installed ({AXE_JS} is missing): run npm ci --prefix tests/browser")
    source = AXE_JS.read_text(encoding="utf-8")

    async def run(tab, context: str | dict | None = None) -> list[Violation]:
        # Evaluated through the DevTools protocol rather than added as a <script>: the pages' own
        # Content-Security-Policy would (rightly) refuse an inline script.
        if not await tab.evaluate("() => typeof window.axe === 'object'"):
            await tab.evaluate(source)
        result = await tab.evaluate(
            """async (context) => {
                const r = await window.axe.run(context ?? document, {resultTypes: ["violations"]});
                return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                              targets: v.nodes.map(n => n.target.join(" >>> "))}));
            }""",
            context,
        )
        return [v for v in result if v["impact"] in AXE_IMPACTS]

    return run


@pytest.fixture
def shot() -> Callable[..., Awaitable[Path]]:
    """``await shot(page, name)`` saves the whole page to ``var/screenshots/<name>.png``; returns its path."""

    async def take(tab, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"not a screenshot name: {name!r}")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await tab.screenshot(path=str(path), full_page=True)
        return path

    return take

