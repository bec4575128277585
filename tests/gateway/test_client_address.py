"""The client's address as the gateway sees it: X-Forwarded-For is believed only from a proxy named
in GATEWAY_TRUSTED_PROXIES (none by default). Clients come from different loopback addresses
(127.0.0.2, 127.0.0.3 …: Linux routes all of 127/8 to lo), against a real gateway server."""

from __future__ import annotations

import logging

import httpx
import pytest
from pydantic import ValidationError

from gateway.settings import DEFAULT_RATE_LIMITS, GatewaySettings
from tests.gateway.test_proxy import gateway

LIMITS = {**DEFAULT_RATE_LIMITS, "login-ip": (2, 60)}


def client_from(address: str, base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=10,
                        transport=httpx.HTTPTransport(local_address=address))


def attempt(client: httpx.Client, forwarded: str | None = None) -> int:
    """One refresh attempt (counted by the per-address rule login-ip); its status."""
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return client.post("/api/v1/auth/refresh", json={"refresh_token": "cvr_" + "x" * 43},
                       headers=headers).status_code


def test_by_default_a_forged_header_changes_nothing(tmp_path) -> None:
    with gateway(tmp_path, rate_limits=LIMITS) as url, client_from("127.0.0.2", url) as a, \
            client_from("127.0.0.3", url) as b:
        assert [attempt(a, f"203.0.113.{i}") for i in range(3)] == [401, 401, 429]  # all counted as 127.0.0.2
        assert attempt(b) == 401  # another address, its own counter


def test_behind_a_trusted_proxy_each_client_has_its_own_counter(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="http")
    with gateway(tmp_path, rate_limits=LIMITS, trusted_proxies="127.0.0.1") as url, \
            client_from("127.0.0.1", url) as proxy, client_from("127.0.0.4", url) as stranger:
        assert [attempt(proxy, "203.0.113.1") for _ in range(3)] == [401, 401, 429]
        assert attempt(proxy, "203.0.113.2") == 401  # another client behind the proxy
        # The client sent its own X-Forwarded-For; the proxy appended the address it saw: the
        # rightmost address not a trusted proxy is the client.
        assert attempt(proxy, "198.51.100.7, 203.0.113.1") == 429
        # Not from a trusted proxy: the header is not believed, the peer's address counts.
        assert [attempt(stranger, "203.0.113.9") for _ in range(3)] == [401, 401, 429]
        assert attempt(proxy, "203.0.113.9") == 401
    clients = [r.client for r in caplog.records if r.name == "http" and getattr(r, "client", None)]
    assert {"203.0.113.1", "203.0.113.2", "127.0.0.4", "203.0.113.9"} <= set(clients), clients
    assert "127.0.0.1" not in clients  # the proxy itself is never taken for the client
    assert "198.51.100.7" not in clients  # nor what a client wrote in the header


def test_trusted_proxies_are_addresses_or_networks() -> None:
    assert GatewaySettings(trusted_proxies="172.30.0.10, 10.0.0.0/8,::1").trusted_proxies
    assert GatewaySettings().trusted_proxies == ""
    with pytest.raises(ValidationError, match="caddy"):
        GatewaySettings(trusted_proxies="caddy")
