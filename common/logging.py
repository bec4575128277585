"""Structured logging: one line per event with service, request id, trace id and route.

``LOG_FORMAT=json`` prints one JSON object per line (for log shippers); otherwise a readable line.
The request id and route come from context variables that the HTTP middleware sets, so every log
line written while handling a request carries them, whichever module wrote it. Work done later on
the request's behalf (an event relayed, consumed, a mail or webhook sent) runs under
:func:`request_context` with the request id carried along, so its lines carry the same id. The trace
id is the current span's (``common.tracing``; null while tracing is off).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import logging
import sys
from collections.abc import Iterator

import orjson

from common.tracing import current_trace_id

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
route_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("route", default=None)
# The app handling the current request (several apps can share a process in tests and benches).
service_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("service", default=None)
_default_service = "cho-vuon"

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


_base_factory = logging.getLogRecordFactory()


def _record_factory(*args, **kwargs) -> logging.LogRecord:
    """Every log record, whichever handler gets it, carries service, request id and route."""
    record = _base_factory(*args, **kwargs)
    record.service = service_var.get() or _default_service
    record.request_id = request_id_var.get()
    record.route = route_var.get()
    record.trace_id = current_trace_id()
    return record


logging.setLogRecordFactory(_record_factory)


def current_request_id() -> str | None:
    return request_id_var.get()


@contextlib.contextmanager
def request_context(request_id: str | None) -> Iterator[None]:
    """Log lines written inside carry ``request_id``: the id of the request whose work this is (kept
    with an outbox row, carried in an event's headers, kept with a queued mail or webhook)."""
    token = request_id_var.set(request_id[:128] if request_id else None)
    try:
        yield
    finally:
        request_id_var.reset(token)


def _extras(record: logging.LogRecord) -> dict:
    skip = _RESERVED | {"service", "request_id", "trace_id", "route", "color_message"}
    return {k: v for k, v in vars(record).items() if k not in skip}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": record.service,
            "logger": record.name,
            "request_id": record.request_id,
            "trace_id": record.trace_id,
            "route": record.route,
            "msg": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        rid = record.request_id or "-"
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        route = f" {record.route}" if record.route else ""
        line = f"{ts} {record.levelname:<7} {record.service} [{rid}]{route} {record.getMessage()}"
        if extras:
            line += f"  {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(service: str, log_format: str = "text", level: str = "INFO") -> None:
    """Route every logger (ours, uvicorn's, sqlalchemy's) through one handler on stderr."""
    global _default_service
    _default_service = service
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler._cho_vuon = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    # Replace only a handler we installed before (tests and embedders may have their own).
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_cho_vuon", False)] + [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # Our middleware writes one access line per request, with the request id; uvicorn's would not.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx would log every proxied or internal call again at INFO; failures are logged by callers.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # alembic names each of its plugins at start; the migrations it runs are still logged.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
