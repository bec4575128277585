"""Text messages to a Vietnamese mobile (today: password-reset codes), through a pluggable provider
chosen by ``GATEWAY_SMS_URL`` (credentials in the URL, as ``SMTP_URL`` does for mail):

- empty (the default): nothing is sent; the message goes to the log. The text itself (hence the
  code) is logged only when ``ENVIRONMENT=development``, so a grower trying it locally can read it.
- ``esms://API_KEY:SECRET_KEY@rest.esms.vn?brandname=NAME`` (``&sandbox=1`` to try the keys without
  sending; ``&tls=0`` for a plain-HTTP stand-in; a path other than ``/`` replaces the documented
  one; key and secret URL-encoded): eSMS.vn's REST API, "Send OTP/Customer care message" — ``POST`` JSON to
  ``SendMultipleMessage_V4_post_json`` with ``ApiKey``, ``SecretKey``, ``Phone``, ``Content``,
  ``Brandname`` (registered with eSMS), ``SmsType`` ``"2"`` (customer care, the type OTPs go as),
  ``IsUnicode`` ``"0"``, ``Sandbox`` and a ``RequestId`` that makes a retried request a duplicate
  instead of a second message. ``CodeResult`` ``"100"`` means eSMS took it; ``"124"`` (that
  RequestId was already taken) means the same; any other code is a failure, named in the error.
  The text must match a customer-care template registered with eSMS for the brandname (code 146
  otherwise), which is why it is plain ASCII with the code in one place.

A provider is one class with ``async send(phone, text, request_id)``; another Vietnamese gateway
(SpeedSMS, Stringee, VNPT…) is another class beside these and a URL scheme in :func:`make_sms`.
"""

from __future__ import annotations

import logging
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from gateway.settings import GatewaySettings

log = logging.getLogger("gateway.sms")

ESMS_PATH = "/MainService.svc/json/SendMultipleMessage_V4_post_json/"
YES = ("1", "true", "yes")


class SmsFailed(Exception):
    """The provider did not take the message (unreachable, refused, out of credit…)."""


class SmsSender(Protocol):
    async def send(self, phone: str, text: str, request_id: str) -> None: ...

    async def aclose(self) -> None: ...


def local_number(e164: str) -> str:
    """``+84912345678`` → ``0912345678``, the form Vietnamese providers document."""
    return "0" + e164[3:] if e164.startswith("+84") else e164


class LogSms:
    def __init__(self, show_text: bool) -> None:
        self.show_text = show_text

    async def send(self, phone: str, text: str, request_id: str) -> None:
        if self.show_text:
            log.info("SMS not sent (GATEWAY_SMS_URL is empty), logged instead: to=%s request=%s text=%r",
                     phone, request_id, text)
        else:
            log.warning("SMS not sent (GATEWAY_SMS_URL is empty): to=%s request=%s; set an SMS provider",
                        phone, request_id)

    async def aclose(self) -> None:
        return None

    def __str__(self) -> str:
        return "the log"


class EsmsSms:
    ACCEPTED = {"100", "124"}  # taken; or already taken under this RequestId (a retry)

    def __init__(self, url: str, api_key: str, secret_key: str, brandname: str, *, sandbox: bool = False,
                 timeout: float = 10.0, client: httpx.AsyncClient | None = None) -> None:
        self.url, self.api_key, self.secret_key, self.brandname = url, api_key, secret_key, brandname
        self.sandbox = sandbox
        self.client = client or httpx.AsyncClient(timeout=timeout)

    async def send(self, phone: str, text: str, request_id: str) -> None:
        body = {"ApiKey": self.api_key, "SecretKey": self.secret_key, "Phone": local_number(phone),
                "Content": text, "Brandname": self.brandname, "SmsType": "2", "IsUnicode": "0",
                "Sandbox": "1" if self.sandbox else "0", "RequestId": request_id}
        try:
            resp = await self.client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise SmsFailed(f"eSMS could not be reached: {type(exc).__name__}") from None
        try:
            data = resp.json()
        except ValueError:
            data = {}
        code = str(data.get("CodeResult", "")) if isinstance(data, dict) else ""
        if resp.status_code != 200 or code not in self.ACCEPTED:
            message = (data.get("ErrorMessage") or data.get("error") or "") if isinstance(data, dict) else ""
            raise SmsFailed(f"eSMS refused the message: HTTP {resp.status_code}, CodeResult {code or '-'} {message}")
        log.info("SMS to %s taken by eSMS (CodeResult %s, SMSID %s)", phone, code, data.get("SMSID", "-"))

    async def aclose(self) -> None:
        await self.client.aclose()

    def __str__(self) -> str:
        return f"eSMS ({self.url})"


def make_sms(settings: GatewaySettings) -> SmsSender:
    """The sender ``GATEWAY_SMS_URL`` names; a malformed one stops the gateway's start."""
    raw = settings.sms_url.strip()
    if not raw:
        return LogSms(show_text=settings.environment == "development")
    url = urlsplit(raw)
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    if url.scheme != "esms" or not url.hostname or not url.username or not url.password \
            or not query.get("brandname"):
        raise ValueError("GATEWAY_SMS_URL must look like esms://API_KEY:SECRET_KEY@rest.esms.vn?brandname=NAME")
    scheme = "http" if query.get("tls", "1").lower() not in YES else "https"
    port = f":{url.port}" if url.port else ""
    endpoint = f"{scheme}://{url.hostname}{port}{url.path if url.path not in ('', '/') else ESMS_PATH}"
    return EsmsSms(endpoint, unquote(url.username), unquote(url.password), query["brandname"],
                   sandbox=query.get("sandbox", "0").lower() in YES, timeout=settings.sms_timeout)
