"""No spelling of a path reaches /internal; ambiguous paths are refused, not guessed."""

import pytest

from gateway.paths import RejectedPath, RouteTable, canonical_path

REFUSED = [
    "/internal/reservations",
    "/INTERNAL/reservations",
    "/api/v1/internal/x",
    "/api/v1/products/../../internal/reservations",
    "/api/v1/products/%2e%2e/%2e%2e/internal/reservations",
    "/api/v1/products/%252e%252e/internal",
    "/api/v1/products/%69nternal/x",
    "/api/v1/products/%2569nternal",
    "/api/v1/products/1%2f..%2finternal",
    "/api/v1/products/1%5c..%5cinternal",
    "/api/v1/products\\..\\internal",
    "//internal/reservations",
    "/api/v1//products",
    "/api/v1/products/./1",
    "/api/v1/products/internal;jsessionid=1",
    "/api/v1/products/internal.",
    "/api/v1/products/%00",
    "api/v1/products",
]


@pytest.mark.parametrize("path", REFUSED)
def test_refused(path: str) -> None:
    with pytest.raises(RejectedPath):
        canonical_path(path.encode())


@pytest.mark.parametrize("path,expected", [
    ("/api/v1/products", "/api/v1/products"),
    ("/api/v1/products/", "/api/v1/products/"),
    ("/api/v1/products/12", "/api/v1/products/12"),
    ("/api/v1/products/%", "/api/v1/products/%25"),  # a lone % is a literal percent sign
    ("/api/v1/shops/v%C6%B0%E1%BB%9Dn", "/api/v1/shops/v%C6%B0%E1%BB%9Dn"),
])
def test_allowed(path: str, expected: str) -> None:
    assert canonical_path(path.encode()) == expected


def test_longest_prefix_on_whole_segments() -> None:
    table = RouteTable({"/api/v1/products": "catalog", "/api/v1/products/special": "orders"})
    assert table.match("/api/v1/products/1") == "catalog"
    assert table.match("/api/v1/products/special/1") == "orders"
    assert table.match("/api/v1/productsX") is None
    assert table.match("/api/v1") is None
