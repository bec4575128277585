"""API7 Server Side Request Forgery: the one place a caller names a URL the platform will call is a
webhook endpoint. Every spelling of an inside address is refused when it is registered or changed,
through the gateway, as a problem naming the field.

Elsewhere (tests/events/test_webhooks.py): the address judgement itself for every special-use range
(::test_which_addresses_may_receive_webhooks), the plain spellings (loopback, private, link-local,
metadata, decimal and hex IPv4, IPv4-mapped IPv6, userinfo, other schemes:
::test_registration_refuses_urls_that_reach_inside), the development-only loopback setting
(::test_loopback_only_with_the_development_setting_and_http_only_in_development,
::test_loopback_setting_is_refused_in_production), and at send time: redirects never followed and the
address checked again, so a name that later resolves inside is not called
(::test_redirects_are_not_followed_and_the_address_is_checked_again_at_send).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from tests.security.conftest import PROBLEM, Market

SPELLINGS = [
    # loopback, in the forms resolvers accept
    "http://0x7f000001/", "http://017700000001/", "http://127.0.1/", "http://0/", "http://LOCALHOST:8000/",
    "http://127。0。0。1/", "http://[0:0:0:0:0:ffff:127.0.0.1]/", "http://[::127.0.0.1]/", "http://[::ffff:7f00:1]/",
    "http://[2002:7f00:1::]/", "http://[0:0:0:0:0:0:0:1]/",
    # the metadata service, every way round
    "http://2852039166/latest/meta-data/", "http://0xa9fea9fe/", "http://169.254.43518/",
    "http://[::ffff:169.254.169.254]/", "http://[::ffff:a9fe:a9fe]/", "http://[64:ff9b::a9fe:a9fe]/",
    "http://[fd00:ec2::254]/latest/meta-data/", "http://100.100.100.200/", "http://metadata.google.internal/",
    # private, shared and link-local networks
    "http://192.168.1.1/", "http://172.31.255.255/", "http://[fc00::1]/", "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/", "http://100.127.0.1/", "http://0.0.0.0:8001/", "http://[::]/",
    # tricks with the URL itself
    "http://127.0.0.1:80@8.8.8.8/", "http://8.8.8.8@127.0.0.1/", "http://8.8.8.8#@127.0.0.1/",
    "http://127.0.0.1%2f@8.8.8.8/", "http://%31%32%37.0.0.1/", "http://127.0.0.1\\@8.8.8.8/",
    "http://127.0.0.1 /", "http://127.0.0.1\t/", "file:///etc/passwd", "gopher://127.0.0.1:6379/_FLUSHALL",
    "dict://127.0.0.1:6379/", "http:///etc/passwd", "//127.0.0.1/", "http://[::1]:8003/internal/events",
    "https://[::1]:443/", "http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/",
]


def names_resolving_inside() -> list[str]:
    """Host names this machine resolves to its own or private addresses (from /etc/hosts)."""
    names = []
    hosts = Path("/etc/hosts")
    for line in hosts.read_text().splitlines() if hosts.exists() else []:
        parts = line.split("#", 1)[0].split()
        try:
            inside = len(parts) > 1 and not ipaddress.ip_address(parts[0]).is_global
        except ValueError:
            continue
        names += [f"http://{name}/hook" for name in parts[1:]] if inside else []
    return names or ["http://localhost/hook"]


def test_no_spelling_of_an_inside_address_is_taken_as_a_webhook(market: Market) -> None:
    grower = market.register("grower")
    urls = SPELLINGS + names_resolving_inside()
    for url in urls:
        resp = market.gw.post("/api/v1/webhooks", headers=grower.headers,
                              json={"url": url, "event_types": ["order.placed"]})
        assert resp.status_code == 422, (url, resp.status_code, resp.text[:200])
        assert resp.headers["content-type"] == PROBLEM
        assert resp.json()["errors"][0]["field"] == "body.url", (url, resp.json())
    # The same guard on a change of address.
    hook = market.gw.post("/api/v1/webhooks", headers=grower.headers,
                          json={"url": "https://8.8.8.8/hook", "event_types": ["stock.low"]})
    assert hook.status_code == 201, hook.text
    for url in ("http://2852039166/", "http://[::ffff:127.0.0.1]:8003/internal/events", *names_resolving_inside()):
        moved = market.gw.patch(f"/api/v1/webhooks/{hook.json()['id']}", headers=grower.headers, json={"url": url})
        assert moved.status_code == 422, (url, moved.text[:200])
    listed = market.gw.get("/api/v1/webhooks", headers=grower.headers).json()["items"]
    assert [h["url"] for h in listed] == ["https://8.8.8.8/hook"]
