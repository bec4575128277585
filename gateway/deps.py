"""What the gateway's routes take, as ``Annotated`` dependencies, and the same providers for the web
pages' helpers, which are handed the request.

The providers below are the only code that reads ``request.app.state`` (what ``app.py`` built at
start-up, besides its own wiring); identity's functions get plain arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends, Request

from common.auth import CurrentPrincipal, Principal, require
from common.db import SessionDep
from common.service import from_state
from gateway.identity.sms import SmsSender
from gateway.identity.tokens import Signer
from gateway.proxy import Upstreams
from gateway.ratelimit import RateLimiter, Rule, enforce
from gateway.settings import GatewaySettings

__all__ = ["CurrentPrincipal", "Grower", "LimitsDep", "SessionDep", "SettingsDep", "SignerDep", "SmsDep",
           "UpstreamsDep"]


@dataclass(frozen=True)
class Limits:
    """The app's rate limiter with its named rules."""

    limiter: RateLimiter
    rules: dict[str, Rule]

    async def check(self, rule: str, key: str) -> None:
        """Count one request under ``rule`` for ``key``; a 429 when it is over the limit."""
        await enforce(self.limiter, self.rules[rule], key)


settings = from_state("settings")
database = from_state("db")
signer = from_state("signer")
verifier = from_state("verifier")
upstreams = from_state("upstreams")
sms = from_state("sms")


def limits(request: Request) -> Limits:
    return Limits(request.app.state.limiter, request.app.state.rules)


def upstream(request: Request, service: str) -> httpx.AsyncClient:
    """The pooled client of one service (the web pages call the API through it)."""
    return request.app.state.upstreams.clients[service]


def api_key_last_writes(request: Request) -> dict[int, float]:
    """When each API key's last use was last written (per process: writes are spaced out)."""
    return request.app.state.__dict__.setdefault("api_key_last_write", {})


SettingsDep = Annotated[GatewaySettings, Depends(settings)]
SignerDep = Annotated[Signer, Depends(signer)]
LimitsDep = Annotated[Limits, Depends(limits)]
UpstreamsDep = Annotated[Upstreams, Depends(upstreams)]
SmsDep = Annotated[SmsSender, Depends(sms)]
Grower = Annotated[Principal, Depends(require("grower"))]
