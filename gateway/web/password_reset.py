"""The forgotten password, from the sign-in page: ``/grower/forgot`` asks for the phone or the email.

- An email: a link to ``/grower/reset/{token}`` is mailed by notify (``POST /internal/mail`` with
  the service credential: notify owns mail, its queue and retries).
- A phone: a six-digit code goes by SMS (``gateway/identity/sms.py``) and ``/grower/reset-code``
  takes it with the new password.

Either works once, for ten minutes; the reply does not say whether an account uses that phone or
email. Asking is limited per phone or email and per client address; trying codes and links, per
client address (and each code allows a few wrong tries). See gateway/identity/reset.py and
docs/decisions/0014-password-reset.md.
"""

from __future__ import annotations

import logging
from typing import Annotated

import httpx
from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from common.errors import ServiceUnavailable
from common.logging import request_id_var
from common.vietnam import InvalidPhone, normalise_vn_mobile
from gateway import deps
from gateway.identity import reset, service
from gateway.identity.sms import SmsFailed, local_number
from gateway.web.core import Redirect, WebRoute, gettext, page
from gateway.web.forms import text
from gateway.web.grower import posted_form
from gateway.web.i18n import N_

log = logging.getLogger("gateway.web")

router = APIRouter(prefix="/grower", route_class=WebRoute, include_in_schema=False)

Token = Annotated[str, Path(min_length=20, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]
NOT_SENT = N_("The message could not be sent just now; try again in a minute")
WEAK = N_("Choose a longer password that is hard to guess")
REFUSED = N_("This code is wrong or no longer works. Check the SMS, or ask for a new code.")


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _key(request: Request) -> bytes:
    return reset.mac_key(deps.settings(request).jwt_private_key.get_secret_value())


def _minutes(request: Request) -> int:
    return deps.settings(request).password_reset_ttl // 60


async def _mail_link(request: Request, account, reset_id: str, token: str) -> None:
    settings = deps.settings(request)
    link = f"{settings.public_base_url.rstrip('/')}/grower/reset/{token}"
    client = deps.upstream(request, "notify")
    body = {"id": reset_id, "recipient": account.email, "locale": account.locale if account.locale in ("vi", "en")
            else "vi", "template": "password_reset",
            "context": {"name": account.name, "link": link, "expires_minutes": _minutes(request)}}
    headers = {"X-Service-Token": settings.service_token.get_secret_value(),
               "X-Request-ID": request_id_var.get() or ""}
    try:
        resp = await client.post("/internal/mail", json=body, headers=headers)
    except httpx.HTTPError:
        raise ServiceUnavailable(NOT_SENT, service="notify") from None
    if resp.status_code >= 300:
        log.error("notify did not queue the reset mail: %s %s", resp.status_code, resp.text[:300])
        raise ServiceUnavailable(NOT_SENT, service="notify")


def sms_text(code: str, minutes: int) -> str:
    """The SMS, in ASCII (one 160-character part; the template registered with the provider)."""
    return f"Cho Vuon: ma dat lai mat khau cua ban la {code}. Ma dung 1 lan, het han sau {minutes} phut. " \
           "Khong dua ma nay cho ai."


# ---- asking --------------------------------------------------------------------------------------------

@router.get("/forgot")
async def forgot_form(request: Request) -> Response:
    return page(request, "reset_forgot.html", values={}, errors={})


@router.post("/forgot")
async def forgot(request: Request) -> Response:
    form = await posted_form(request)
    _ = gettext(request)
    login = text(form, "login")[:254]
    values = {"login": login}
    if not login:
        return page(request, "reset_forgot.html", status=422, values=values,
                    errors={"login": _("This field is required")})
    by_email = "@" in login
    if not by_email:
        try:
            phone = normalise_vn_mobile(login)
        except InvalidPhone:
            return page(request, "reset_forgot.html", status=422, values=values,
                        errors={"login": _("Enter a Vietnamese mobile number, e.g. 0912 345 678")})
    limits = deps.limits(request)
    await limits.check("reset-ip", _ip(request))
    await limits.check("reset-login", service.login_key(login))
    ttl = deps.settings(request).password_reset_ttl
    async with deps.database(request).unit_of_work() as db:
        account = await service.find_by_login(db, login)
        if account is not None and (not by_email or account.email) and not account.locked:
            started, secret = await reset.start(db, account, reset.EMAIL if by_email else reset.SMS, ttl=ttl,
                                                key=_key(request))
            await db.commit()  # stored before its link or code is sent: what is sent then works
            if by_email:
                await _mail_link(request, account, started.id, secret)
            else:
                try:
                    await deps.sms(request).send(account.phone, sms_text(secret, ttl // 60), started.id)
                except SmsFailed as exc:
                    log.error("reset code for %s not sent: %s", account.phone, exc)
                    raise ServiceUnavailable(NOT_SENT, service="sms") from None
    if by_email:
        return page(request, "reset_sent.html", email=login.lower(), minutes=ttl // 60)
    raise Redirect(f"/grower/reset-code?phone={local_number(phone)}")


# ---- by the code (SMS) ----------------------------------------------------------------------------------

def _code_page(request: Request, values: dict, errors: dict, status: int = 200, message: str = "") -> Response:
    return page(request, "reset_code.html", status=status, values=values, errors=errors, message=message,
                minutes=_minutes(request))


@router.get("/reset-code")
async def code_form(request: Request, phone: str = "") -> Response:
    return _code_page(request, {"phone": phone[:20]}, {})


@router.post("/reset-code")
async def use_code(request: Request) -> Response:
    form = await posted_form(request)
    _ = gettext(request)
    phone, code = text(form, "phone")[:20], text(form, "code").replace(" ", "")
    password = str(form.get("password") or "")
    values = {"phone": phone, "code": code}
    errors = {}
    if not code:
        errors["code"] = _("This field is required")
    if len(password) < 8 or len(password) > 128:
        errors["password"] = _("At least 8 characters, hard to guess")
    try:
        phone_e164 = normalise_vn_mobile(phone)
    except InvalidPhone:
        errors["phone"] = _("Enter a Vietnamese mobile number, e.g. 0912 345 678")
    if errors:
        return _code_page(request, values, errors, 422, _("Please check the marked fields"))
    await deps.limits(request).check("reset-verify-ip", _ip(request))
    async with deps.database(request).unit_of_work() as db:
        account = await service.find_by_login(db, phone_e164)
        try:
            started = await reset.check_code(db, account, code, key=_key(request),
                                             max_tries=deps.settings(request).password_reset_code_tries)
            await reset.finish(db, started, account, password)
        except reset.ResetRefused:
            return _code_page(request, values, {"code": _(REFUSED)}, 422)
        except reset.WeakPassword:
            return _code_page(request, values, {"password": _(WEAK)}, 422, _("Please check the marked fields"))
    raise Redirect("/grower/login?reset=1")


# ---- by the link (email) --------------------------------------------------------------------------------

def _expired(request: Request) -> Response:
    return page(request, "reset_expired.html", status=410)


@router.get("/reset/{token}")
async def link_form(request: Request, token: Token) -> Response:
    await deps.limits(request).check("reset-verify-ip", _ip(request))
    async with deps.database(request).sessionmaker() as db:
        try:
            await reset.by_link(db, token)
        except reset.ResetRefused:
            return _expired(request)
    return page(request, "reset_link.html", token=token, errors={})


@router.post("/reset/{token}")
async def use_link(request: Request, token: Token) -> Response:
    form = await posted_form(request)
    _ = gettext(request)
    password = str(form.get("password") or "")
    if len(password) < 8 or len(password) > 128:
        return page(request, "reset_link.html", status=422, token=token,
                    errors={"password": _("At least 8 characters, hard to guess")})
    await deps.limits(request).check("reset-verify-ip", _ip(request))
    async with deps.database(request).unit_of_work() as db:
        try:
            started, account = await reset.by_link(db, token)
            await reset.finish(db, started, account, password)
        except reset.ResetRefused:
            return _expired(request)
        except reset.WeakPassword:
            return page(request, "reset_link.html", status=422, token=token, errors={"password": _(WEAK)})
    raise Redirect("/grower/login?reset=1")
