"""A stand-in for eSMS.vn's "Send OTP/Customer care message" endpoint (a real HTTP server, in a thread):
it keeps every request and answers as eSMS documents — ``CodeResult`` "100" when the ApiKey and
SecretKey are right, "101" when they are not, "124" for a RequestId seen before."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from fastapi import FastAPI, Request

from tests.support.servers import serve_in_thread

PATH = "/MainService.svc/json/SendMultipleMessage_V4_post_json/"
API_KEY, SECRET_KEY, BRANDNAME = "TESTAPIKEY", "TESTSECRET", "CHOVUON"


@dataclass
class Esms:
    url: str = ""
    received: list[dict] = field(default_factory=list)
    down: bool = False  # answer 503, as when eSMS has an outage
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def to(self, phone: str) -> list[dict]:
        with self._lock:
            return [r for r in self.received if r.get("Phone") == phone]

    @property
    def settings(self) -> dict:
        """The gateway's settings that send through this server."""
        host = self.url.removeprefix("http://").split("/", 1)[0]
        return {"sms_url": f"esms://{API_KEY}:{SECRET_KEY}@{host}{PATH}?brandname={BRANDNAME}&tls=0"}


@contextlib.contextmanager
def esms_server() -> Iterator[Esms]:
    esms = Esms()
    app = FastAPI()

    @app.post(PATH)
    async def send(request: Request):
        from starlette.responses import JSONResponse

        if esms.down:
            return JSONResponse({"error": "Invalid request"}, status_code=503)
        body = await request.json()
        with esms._lock:
            seen = any(r.get("RequestId") == body.get("RequestId") for r in esms.received)
            esms.received.append(body)
        if body.get("ApiKey") != API_KEY or body.get("SecretKey") != SECRET_KEY:
            return {"CodeResult": "101", "CountRegenerate": 0, "ErrorMessage": "Authorize Failed"}
        if body.get("Brandname") != BRANDNAME:
            return {"CodeResult": "104", "CountRegenerate": 0, "ErrorMessage": "Brand name code is not exist"}
        if seen:
            return {"CodeResult": "124", "CountRegenerate": 0, "ErrorMessage": "Request exist 1", "SendStatus": "5"}
        return {"CodeResult": "100", "CountRegenerate": 0, "SMSID": uuid.uuid4().hex}

    with serve_in_thread(app) as base:
        esms.url = base + PATH
        yield esms
