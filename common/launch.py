"""Several apps on one host from one parent: ``python -m common.launch gateway services.catalog …``.

The parent imports what the apps import (their ``__main__`` modules and what those import, the server,
the database drivers, the event bus client), sets up the ORM's mappers, freezes the garbage
collector's view of all that (``gc.freeze()``) and forks one child per app; each child runs exactly
what ``python -m <app> serve`` runs (its migrations in a process of their own, then uvicorn), with its
settings read in the child. The pages the imports filled stay shared between the children until one
of them writes to one, so the floor every app imports (Python, pydantic with FastAPI, SQLAlchemy,
httpx, cryptography, uvicorn) is in memory once rather than once per app. Then the parent replaces
itself (``exec``) by a small supervisor, the same process with the same children: the pages every
child has since copied would otherwise stay in the parent for nothing.

Nothing runs in the parent before the fork that would not survive it: no thread, no event loop, no
socket or database connection, no settings of an app. The supervisor turns SIGINT and SIGTERM into a
SIGTERM to each child (uvicorn's graceful shutdown); when a child exits without being asked, it stops
the others and exits with that child's status, as a process manager would (``make run`` is for one
machine and a developer: an app that dies should be seen, not hidden by a restart). Each child's
output goes where the parent's goes, each app's log lines naming their service. On Linux each child
is named after its app (``ps``, ``top``) and stops if the supervisor dies.

One process per container (compose, Kubernetes) runs ``python -m <app> serve`` itself: there is
nothing to share there. This module imports only the standard library at the top, so that the
supervisor stays small.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import gc
import importlib
import os
import runpy
import signal
import sys
import threading
import time
import traceback

# What `serve` and the first requests import after the app's own modules: uvicorn's server and the loop,
# protocol and lifespan classes it picks, the database drivers, httpx's transport (httpcore, h11, h2),
# OpenSSL's backend and anyio's streams (modules not installed are skipped).
SERVER_MODULES = ("uvicorn", "uvicorn.lifespan.on", "uvicorn.loops.auto", "uvicorn.loops.uvloop",
                  "uvicorn.protocols.http.auto", "uvicorn.protocols.websockets.auto", "asyncpg",
                  "sqlalchemy.dialects.postgresql.asyncpg", "aiosqlite", "sqlalchemy.dialects.sqlite.aiosqlite",
                  "httpcore", "h11", "h2.connection", "encodings.idna", "cryptography.hazmat.backends.openssl",
                  "anyio.streams.tls", "anyio.streams.memory", "anyio.streams.stapled", "fastapi.telemetry._runtime")
STOP_GRACE = 20.0  # seconds after SIGTERM before the children left are killed (uvicorn's own grace is 10 s)
HANDLED = {signal.SIGINT, signal.SIGTERM}
_PR_SET_NAME, _PR_SET_PDEATHSIG = 15, 1


def say(message: str, level: str = "INFO") -> None:
    """One line on stderr, as the apps' text log lines look (the supervisor has no logging set up)."""
    ts = dt.datetime.now().strftime("%H:%M:%S.%f")[:-3]
    print(f"{ts} {level:<7} launch [-] {message}", file=sys.stderr, flush=True)


def preload(modules: list[str]) -> int:
    """Import what the apps ``modules`` import before they build anything, run each app's ``prefork()``
    (a function its ``__main__`` may define: it loads what the app loads lazily and is the same in every
    process, never settings, threads or connections), and configure the ORM's mappers (what each app's
    first query would do); returns how many modules are loaded."""
    import common.cli  # noqa: F401 - before httpx: keeps httpx's command line out, as `serve` does

    for module in modules:
        main = importlib.import_module(f"{module}.__main__")  # the app's command line: app, settings, commands
        if callable(prefork := getattr(main, "prefork", None)):
            prefork()  # what every process of that app would otherwise load itself, the same in each
    for name in SERVER_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    bus_url = os.environ.get("EVENT_BUS_URL", "")
    if bus_url.startswith(("nats://", "tls://", "ws://", "wss://")):
        from common.bus import import_nats

        import_nats(bus_url)
    from sqlalchemy.orm import configure_mappers

    configure_mappers()
    return len(sys.modules)


def _prctl(option: int, value: int | bytes) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _child(module: str, parent: int) -> None:
    """In the forked child: ``python -m <module> serve``, then exit with its status (never returns)."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)
        _prctl(_PR_SET_NAME, module.rsplit(".", 1)[-1].encode()[:15])
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)
        sys.argv = [module, "serve"]
        sys.modules.pop(f"{module}.__main__", None)  # imported by the parent as a module: run it as `-m` would
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    except BaseException:  # noqa: BLE001 - whatever it was, say it and exit non-zero like an interpreter
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            import logging

            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def start(modules: list[str]) -> None:
    """The parent: imports, forks a child per app, then becomes the supervisor of those children."""
    from common.cli import return_freed_memory
    from common.logging import configure_logging
    from common.settings import SharedSettings

    shared = SharedSettings()
    configure_logging("launch", shared.log_format, shared.log_level)
    return_freed_memory()
    began = time.monotonic()
    gc.disable()  # no collection while importing: nothing made here is garbage
    loaded = preload(modules)
    if threading.active_count() != 1:
        sys.exit(f"launch: a thread started while importing ({threading.enumerate()}); not forking")
    gc.enable()
    gc.collect()
    gc.freeze()  # the collector never writes to what was imported, so the children keep sharing it
    import logging

    logging.getLogger("common.launch").info("%d modules imported in %.1f s; starting %s", loaded,
                                            time.monotonic() - began, ", ".join(modules))
    # Blocked from the first fork until the supervisor handles them: no signal is lost, and none reaches a
    # child while it still has the parent's handlers.
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    parent, children = os.getpid(), []
    for module in modules:
        pid = os.fork()
        if pid == 0:
            _child(module, parent)
        children.append(f"{module}={pid}")
        logging.getLogger("common.launch").info("started %s (pid %d)", module, pid)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "common.launch", "--supervise", *children])


class Supervisor:
    """The children by pid; the first signal or the first child to exit unasked stops them all."""

    def __init__(self, children: dict[int, str]) -> None:
        self.children = children
        self.stopping = False
        self.status = 0

    def stop(self, why: str) -> None:
        if self.stopping:
            return
        self.stopping = True
        say(f"{why}: stopping {', '.join(self.children.values()) or 'nothing'}")
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        signal.setitimer(signal.ITIMER_REAL, STOP_GRACE)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stop(signal.Signals(signum).name)

    def _on_alarm(self, signum: int, frame: object) -> None:
        for pid, module in self.children.items():
            say(f"{module} (pid {pid}) still running {STOP_GRACE:.0f} s after SIGTERM: killing it", "WARNING")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGALRM, self._on_alarm)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)
        while self.children:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:
                break
            module = self.children.pop(pid, None)
            if module is None:
                continue
            status = os.waitstatus_to_exitcode(wait_status)
            status = status if status >= 0 else 128 - status  # killed by a signal: 128 + its number, as a shell
            if not (self.stopping and status in (0, 128 + signal.SIGTERM, 128 + signal.SIGINT)):
                self.status = self.status or status or 1
                say(f"{module} (pid {pid}) exited with status {status}", "ERROR")
                self.stop(f"{module} exited")
        signal.setitimer(signal.ITIMER_REAL, 0)
        return self.status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="+", metavar="APP", help="an app's package, run as `python -m APP serve`")
    parser.add_argument("--supervise", action="store_true", help=argparse.SUPPRESS)  # APP=PID: after the exec
    args = parser.parse_args(argv)
    if not args.supervise:
        start(args.modules)
    children = {int(pid): module for module, _, pid in (item.rpartition("=") for item in args.modules)}
    return Supervisor(children).run()


if __name__ == "__main__":
    sys.exit(main())
