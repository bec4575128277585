"""A stand-in for one replica of a service, as a real process (``python -m tests.support.stub_upstream
PORT``): it answers any path with its own port and what it was asked, keeps a count of the requests it
received (``GET /_hits``), and on ``POST …/die`` exits on the spot, after reading the request and
before answering — a replica killed mid-request."""

from __future__ import annotations

import os
import sys

import orjson
import uvicorn

HITS: dict[str, int] = {}


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path, method = scope["path"], scope["method"]
    if path != "/_hits":
        HITS[f"{method} {path}"] = HITS.get(f"{method} {path}", 0) + 1
    if method == "POST" and path.endswith("/die"):
        os._exit(1)
    reply = orjson.dumps(HITS if path == "/_hits" else
                         {"port": scope["server"][1], "method": method, "path": path, "body": body.decode()})
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(reply)).encode())]})
    await send({"type": "http.response.body", "body": reply})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
