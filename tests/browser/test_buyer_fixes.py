"""What a buyer on a phone ran into, each seen in Chromium at 390×844 in Vietnamese: square photos in the
grids, pickup without an address, whole quantities only, messages in the page's language, a page fresh
right after a price change, HTML error pages, the minimum order, the payment in the history."""

from __future__ import annotations

import re

from tests.browser.test_buyer_path import PROVINCE, WARD, nursery


async def test_cards_keep_their_photo_square(stack, page, shot):
    _, shop, _ = await nursery(stack, products=3)
    for url in (shop["url"], stack.urls["gateway"] + "/"):
        await page.goto(url)
        await page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
        boxes = await page.eval_on_selector_all(".card img", "els => els.map(e => e.getBoundingClientRect())"
                                                " .map(r => [Math.round(r.width), Math.round(r.height)])")
        assert len(boxes) == 3
        for width, height in boxes:
            assert 150 < width < 200 and abs(width - height) <= 1, boxes
    await shot(page, "fix-01-square-cards")
