"""RFC 9457 problem details: one exception base, one place that turns errors into replies.

Every error any app returns is ``application/problem+json`` with ``type``, ``title``, ``status``,
``detail`` and, for validation, ``errors`` with field paths. Unhandled exceptions become a 500
carrying the request id and never a stack trace (that goes to the log).

``type`` is an absolute URI on the marketplace's public address (``PUBLIC_BASE_URL`` of each app,
the gateway's address): ``https://chovuon.vn/problems/out-of-stock``. Every type is listed in
:data:`PROBLEM_TYPES`, and the gateway serves each one's page there (``gateway/web/problems.py``).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request, params, routing
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from common.logging import request_id_var

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_PATH = "/problems/"
DEFAULT_BASE_URL = "http://localhost:8000"
# The public address problem types are made on: set for each request from the app's settings
# (common.observability.RequestContextMiddleware).
problem_base_var: contextvars.ContextVar[str] = contextvars.ContextVar("problem_base", default=DEFAULT_BASE_URL)


@dataclass(frozen=True)
class ProblemType:
    status: int
    title: str
    en: str  # when it happens and what to do, for the type's page
    vi: str


def _t(status: int, title: str, en: str, vi: str) -> ProblemType:
    return ProblemType(status, title, en, vi)


# Every problem type an app may answer with. tests/contract/test_problem_types.py checks that every
# Problem subclass and every problem built by hand is here, and that the gateway serves each page.
PROBLEM_TYPES: dict[str, ProblemType] = {
    "bad-request": _t(400, "Bad request", "The request could not be taken as it is; `detail` says why.",
                      "Yêu cầu không dùng được như đã gửi; `detail` cho biết lý do."),
    "malformed-json": _t(400, "The body is not valid JSON",
                         "The body was sent as JSON but does not parse. Send UTF-8 JSON.",
                         "Nội dung gửi lên khai là JSON nhưng không đọc được. Hãy gửi JSON UTF-8."),
    "malformed-upload": _t(400, "The upload could not be read",
                           "A multipart body that cannot be parsed, or was cut off. Send the photo again.",
                           "Tệp tải lên không đọc được hoặc bị cắt ngang. Hãy gửi lại ảnh."),
    "idempotency-key-missing": _t(400, "Idempotency-Key header required",
                                  "Placing an order needs an `Idempotency-Key` header: a fresh UUID per order, "
                                  "the same one when you retry.",
                                  "Đặt hàng cần tiêu đề `Idempotency-Key`: một UUID mới cho mỗi đơn, giữ nguyên "
                                  "khi gửi lại."),
    "unauthorized": _t(401, "Authentication required",
                       "Sign in (`POST /api/v1/auth/token`) and send the access token, or an API key; an expired "
                       "token is refreshed with `POST /api/v1/auth/refresh`.",
                       "Hãy đăng nhập và gửi mã truy cập, hoặc khoá API; mã hết hạn thì làm mới bằng "
                       "`POST /api/v1/auth/refresh`."),
    "invalid-credentials": _t(401, "Wrong login or password",
                              "The login (phone or email) and password do not match an account that may sign in.",
                              "Số điện thoại (hoặc email) và mật khẩu không khớp với tài khoản nào."),
    "invalid-refresh-token": _t(401, "The refresh token is not valid",
                                "The refresh token is unknown, expired, revoked, or was already used (using a "
                                "rotated one again revokes the whole sign-in). Sign in again.",
                                "Mã làm mới không hợp lệ, đã hết hạn, đã bị thu hồi hoặc đã dùng. Hãy đăng nhập "
                                "lại."),
    "forbidden": _t(403, "Forbidden", "The account's role, or the API key's scopes (`scope` names the one "
                                      "missing), do not allow this.",
                    "Vai trò của tài khoản hoặc phạm vi của khoá API (`scope`) không cho phép việc này."),
    "csrf-refused": _t(403, "This form has expired or did not come from Chợ Vườn",
                       "A web form sent without its CSRF token, or after it expired. Reload the page.",
                       "Biểu mẫu đã hết hạn hoặc không đến từ Chợ Vườn. Hãy tải lại trang."),
    "not-found": _t(404, "Not found", "No such resource, or it is not yours (others' resources are not revealed).",
                    "Không có tài nguyên này, hoặc nó không thuộc về bạn."),
    "method-not-allowed": _t(405, "Method not allowed", "The path exists, the method does not; `Allow` lists "
                                                        "the methods it takes.",
                             "Đường dẫn có, nhưng không nhận phương thức này; xem tiêu đề `Allow`."),
    "request-timeout": _t(408, "The request body took too long to arrive",
                          "The body did not arrive in time (20 seconds for JSON). Send it again.",
                          "Nội dung gửi lên đến quá chậm. Hãy gửi lại."),
    "conflict": _t(409, "Conflict", "The request conflicts with the resource's current state; `detail` says how.",
                   "Yêu cầu mâu thuẫn với trạng thái hiện tại; xem `detail`."),
    "idempotency-key-in-flight": _t(409, "A request with this Idempotency-Key is still being processed",
                                    "The first request with this key has not finished. Retry after `Retry-After` "
                                    "seconds: you will get its reply.",
                                    "Yêu cầu đầu tiên với khoá này chưa xong. Hãy thử lại sau `Retry-After` giây."),
    "illegal-transition": _t(409, "This order cannot make that move now",
                             "The order's state does not allow this move; `allowed_actions` lists those it does.",
                             "Trạng thái đơn hàng không cho phép bước này; `allowed_actions` liệt kê các bước "
                             "được phép."),
    "out-of-stock": _t(409, "Not enough stock", "Some lines ask for more than is left; `errors` names each line "
                                                 "and what is available. Nothing was ordered.",
                       "Không đủ hàng cho một số dòng; `errors` ghi từng dòng và số còn lại. Chưa có gì được đặt."),
    "not-bank-transfer": _t(409, "This order is not paid by bank transfer",
                            "A payment QR was asked for an order paid in cash on delivery.",
                            "Đơn này thanh toán khi nhận hàng, không có mã QR chuyển khoản."),
    "no-buyer-email": _t(409, "This order has no email to send to",
                         "The buyer gave no email with this order: send the tracking link by SMS or Zalo.",
                         "Người mua không để lại email cho đơn này: hãy gửi liên kết theo dõi qua SMS hoặc Zalo."),
    "no-tracking-link": _t(409, "This order's tracking link was not kept",
                           "The order was placed before tracking links were kept; its link was shown once, when "
                           "it was placed.",
                           "Đơn được đặt trước khi Chợ Vườn lưu liên kết theo dõi; liên kết chỉ hiện một lần "
                           "lúc đặt đơn."),
    "order-cancelled": _t(409, "This order is cancelled", "A payment QR was asked for a cancelled order: there "
                                                          "is nothing to pay.",
                          "Đơn đã huỷ: không có gì để thanh toán."),
    "reservation-closed": _t(409, "The reservation was already released",
                             "Internal: the stock of this reservation was given back before it was committed.",
                             "Nội bộ: phần hàng giữ chỗ đã được trả lại trước khi xác nhận."),
    "reservation-mismatch": _t(409, "This reservation id was used for other lines",
                               "Internal: a reservation id sent again with other lines.",
                               "Nội bộ: mã giữ chỗ được gửi lại với các dòng khác."),
    "webhook-limit": _t(409, "Too many webhook endpoints", "A grower has at most 10 webhook endpoints; delete "
                                                            "one first. `limit` says how many.",
                        "Mỗi nhà vườn có tối đa 10 địa chỉ webhook; hãy xoá bớt một địa chỉ."),
    "payload-too-large": _t(413, "The request body is too large",
                            "The body is over its limit (`limit`, in bytes): 1 MB for JSON, 15 MB for a photo.",
                            "Nội dung quá lớn (`limit`, tính bằng byte): 1 MB với JSON, 15 MB với ảnh."),
    "unsupported-media-type": _t(415, "Unsupported media type",
                                 "The body's `Content-Type` is not one this operation takes: JSON bodies are "
                                 "`application/json`; photos `multipart/form-data` or `image/…`.",
                                 "Kiểu nội dung không được nhận: JSON gửi với `application/json`; ảnh với "
                                 "`multipart/form-data` hoặc `image/…`."),
    "unsupported-photo-type": _t(415, "This file is not a photo we can take",
                                 "The file's content is not JPEG, PNG, WebP or HEIC (its name and declared type "
                                 "do not count).",
                                 "Tệp không phải ảnh JPEG, PNG, WebP hay HEIC."),
    "validation-error": _t(422, "The request is not valid", "Fields are invalid; `errors` lists each with its "
                                                            "path (`body.lines[0].quantity`) and what is wrong. "
                                                            "A field the API does not know is refused too.",
                           "Một số trường không hợp lệ; `errors` ghi từng trường và lỗi. Trường lạ cũng bị từ "
                           "chối."),
    "idempotency-key-reused": _t(422, "This Idempotency-Key was used with another request body",
                                 "The key was used before with a different body. Use a fresh key for a new order.",
                                 "Khoá này đã dùng với nội dung khác. Hãy dùng khoá mới cho đơn mới."),
    "too-many-pixels": _t(422, "The photo has too many pixels", "A photo over 50 megapixels (refused from its "
                                                                "header, before decoding).",
                          "Ảnh lớn hơn 50 megapixel."),
    "unreadable-photo": _t(422, "The photo could not be read", "A photo of a known type that cannot be decoded "
                                                               "(truncated, corrupt).",
                           "Ảnh bị hỏng hoặc bị cắt, không giải mã được."),
    "rate-limited": _t(429, "Too many requests", "A rate limit was reached (`policy` names it); wait `Retry-After` "
                                                 "seconds.",
                       "Quá nhiều yêu cầu; hãy đợi `Retry-After` giây."),
    "internal-error": _t(500, "Internal server error", "Our fault. Quote `request_id` when you report it.",
                         "Lỗi phía chúng tôi. Hãy gửi kèm `request_id` khi báo lỗi."),
    "bad-gateway": _t(502, "Bad gateway", "A service broke the connection; retry.",
                      "Một dịch vụ ngắt kết nối; hãy thử lại."),
    "service-unavailable": _t(503, "Service unavailable", "A service is down or busy (`service` names it); "
                                                          "nothing was changed. Honour `Retry-After`.",
                              "Một dịch vụ đang bận hoặc ngừng (`service`); chưa có gì thay đổi. Hãy thử lại sau "
                              "`Retry-After` giây."),
    "database-unavailable": _t(503, "Database unavailable", "A service's database cannot be reached right now "
                                                            "(a restart); nothing was changed. Honour "
                                                            "`Retry-After`.",
                               "Cơ sở dữ liệu tạm thời không truy cập được; chưa có gì thay đổi. Hãy thử lại sau."),
    "upstream-timeout": _t(504, "Gateway timeout", "A service did not answer in time; retry (orders: with the "
                                                   "same `Idempotency-Key`).",
                           "Một dịch vụ không trả lời kịp; hãy thử lại (đơn hàng: giữ nguyên `Idempotency-Key`)."),
}


def problem_type(slug: str | None) -> str:
    """The absolute URI of a problem type (``about:blank`` for none)."""
    return f"{problem_base_var.get().rstrip('/')}{PROBLEM_PATH}{slug}" if slug else "about:blank"


class ProblemResponse(Response):
    media_type = PROBLEM_CONTENT_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem_body(status: int, slug: str | None = None, title: str | None = None,
                 detail: str | None = None, **extra: Any) -> dict[str, Any]:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": problem_type(slug),
        "title": title or (PROBLEM_TYPES[slug].title if slug in PROBLEM_TYPES else phrase),
        "status": status,
        "detail": detail or title or phrase,
    }
    rid = request_id_var.get()
    if rid:
        body["request_id"] = rid
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def problem_response(status: int, slug: str | None = None, title: str | None = None,
                     detail: str | None = None, headers: dict[str, str] | None = None,
                     **extra: Any) -> ProblemResponse:
    return ProblemResponse(problem_body(status, slug, title, detail, **extra), status_code=status,
                           headers=headers)


class Problem(Exception):
    """Base of every error the apps raise on purpose. Subclasses fix status, slug and title."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers
        self.extra = extra

    def to_response(self) -> ProblemResponse:
        return problem_response(self.status, self.slug, self.title, self.detail, self.headers,
                                **self.extra)


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Authentication required"


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Forbidden"


class UnprocessableEntity(Problem):
    status, slug, title = 422, "validation-error", "The request is not valid"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """('body', 'lines', 0, 'quantity') → 'body.lines[0].quantity'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"field": field_path(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]


def validation_problem(errors: list[dict[str, Any]]) -> ProblemResponse:
    """422 with field paths; a body that is not JSON at all is a 400."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem_response(400, "malformed-json", "The body is not valid JSON",
                                errors=validation_errors(errors))
    return problem_response(422, "validation-error", "The request is not valid",
                            "One or more fields are invalid; see errors.",
                            errors=validation_errors(errors))


_HTTP_SLUGS = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large",
               401: "unauthorized", 403: "forbidden", 409: "conflict", 429: "rate-limited"}


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> Response:
        return exc.to_response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        if _json_body_not_sent_as_json(request) and any(e.get("loc", ("",))[0] == "body" for e in errors):
            return problem_response(415, "unsupported-media-type", "Unsupported media type",
                                    "Send the body as JSON, with Content-Type: application/json.")
        return validation_problem(errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code == 404 and detail == "Not Found":
            detail = "No such resource"
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return problem_response(exc.status_code, _HTTP_SLUGS.get(exc.status_code), getattr(exc, "problem_title", None),
                                detail, headers, **getattr(exc, "problem_extra", {}))


def _json_body_not_sent_as_json(request: Request) -> bool:
    """The route reads a JSON body, and the request's body is declared as something else (or not at all)."""
    route = request.scope.get("route")
    body_field = getattr(route, "body_field", None)
    if body_field is None or isinstance(body_field.field_info, params.Form):
        return False
    ctype = request.headers.get("content-type")
    if ctype is None:
        return request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    main = ctype.split(";", 1)[0].strip().lower()
    return not (main == "application/json" or (main.startswith("application/") and main.endswith("+json")))


def allowed_methods(request: Request) -> list[str]:
    """The methods of the resource at this path (Starlette's 405 names only the first route's).

    As in OpenAPI path matching, a concrete path wins over a templated one: at ``/shops/mine`` the
    methods of ``/shops/mine`` count, not those of ``/shops/{shop_id}``. Catch-all routes
    (``{…:path}``) are no resource and never count.
    """
    path = request.scope.get("path", "")
    best, methods = -1, set()
    for ctx in routing.iter_route_contexts(request.app.routes):
        regex, route_methods = getattr(ctx, "path_regex", None), getattr(ctx, "methods", None)
        template = getattr(ctx, "path_format", None) or ""
        if regex is None or not route_methods or ":path}" in getattr(ctx, "path", "") or not regex.match(path):
            continue
        concrete = sum(1 for segment in template.split("/") if segment and "{" not in segment)
        if concrete > best:
            best, methods = concrete, set()
        if concrete == best:
            methods.update(route_methods)
    order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return sorted(methods, key=lambda m: (order.index(m) if m in order else len(order), m))
