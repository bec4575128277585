"""The home page on a phone: cards from every shop naming the shop and its province, filters, paging."""

from __future__ import annotations

from tests.browser.test_buyer_path import nursery


async def test_the_home_page_names_each_cards_shop_and_filters(stack, page, axe, shot):
    await nursery(stack, products=3)
    await page.goto(stack.urls["gateway"] + "/")
    shops = await page.locator(".card .card-shop").all_inner_texts()
    assert shops == ["Vườn Súng Sa Đéc · Đồng Tháp"] * 3
    await page.get_by_text("Bộ lọc", exact=True).click()
    await page.get_by_label("Tỉnh/thành của cửa hàng").select_option("01")  # Hà Nội: no shop there
    await page.get_by_role("button", name="Xem", exact=True).click()
    await page.wait_for_url("**/?**province=01**")
    main = await page.locator("main").inner_text()
    assert "Không tìm thấy gì." in main and "Giống cây mới nhất" in main
    await shot(page, "home-01-empty-suggests")
    assert await axe(page) == []
    await page.goto(stack.urls["gateway"] + "/?q=sung&in_stock=1")
    assert await page.locator(".card").count() == 3
    await shot(page, "home-02-search")
    assert await axe(page) == []
