"""Structured logging: one line per event with service, request id and route.

``LOG_FORMAT=json`` prints one JSON object per line (for log shippers); otherwise a readable line.
The request id and route come from context variables that the HTTP middleware sets, so every log
line written while handling a request carries them, whichever module wrote it.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import sys

import orjson

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
    return record


logging.setLogRecordFactory(_record_factory)


def _extras(record: logging.LogRecord) -> dict:
    skip = _RESERVED | {"service", "request_id", "route", "color_message"}
    return {k: v for k, v in vars(record).items() if k not in skip}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": record.service,
            "logger": record.name,
            "request_id": record.request_id,
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
