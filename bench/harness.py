"""What every bench here needs, once: the venv, a run (temporary directory, children stopped in order
also on Ctrl-C or SIGTERM, clean-ups, a header describing the machine and the commit), the four apps on
their own databases and free ports, CPU and memory readings, percentiles, tables, docs/performance.md."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib
import io
import json
import math
import os
import platform
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, is_dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PERFORMANCE_MD = REPO / "docs" / "performance.md"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
APPS = ("notify", "catalog", "orders", "gateway")  # notify first: it makes the development key pair
MODULES = {"notify": "services.notify", "catalog": "services.catalog", "orders": "services.orders",
           "gateway": "gateway"}
APP_SETTINGS = ("CATALOG_", "GATEWAY_", "ORDERS_", "NOTIFY_", "EVENT_", "SMTP_", "JWT_PUBLIC_KEY", "SERVICE_TOKEN")
PASSWORD = "Sen-hong-Dong-Thap-7"
PG_ADMIN_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://root@127.0.0.1:5432/postgres")
WORDS = json.loads((REPO / "bench" / "words.json").read_text())  # the words the benches make their data of


class BenchError(RuntimeError):
    pass


def ensure_venv(script: str, *needs: str, target: str) -> None:
    """Run ``script`` (the bench's ``__file__``) under the project's venv, where the apps' packages are;
    exit with what to do when a module it ``needs`` does not import there."""
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(script).resolve()), *sys.argv[1:]])
    for module in needs:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            sys.exit(f"bench/{Path(script).name}: {exc}; run `make install` first (then `make {target}`).")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> dict[str, str]:
    """What a run's figures depend on: CPUs, their model, memory, kernel, Python, the commit measured
    and the load average before the run (other work on the machine skews the figures)."""
    proc = {name: Path(f"/proc/{name}").read_text() if Path(f"/proc/{name}").exists() else "" for name in
            ("cpuinfo", "meminfo")}
    model, mem = re.search(r"^model name\s*: (.*)$", proc["cpuinfo"], re.M), re.search(r"^MemTotal: +(\d+)",
                                                                                        proc["meminfo"], re.M)
    return {"cpus": str(os.cpu_count()), "cpu_model": model[1].strip() if model else platform.processor() or "?",
            "memory": f"{int(mem[1]) / 1024 / 1024:.1f} GiB" if mem else "?",
            "kernel": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "source": git_describe(), "load_before": load_average()}


def git_describe() -> str:
    dirty = tool_version(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"]) != "?"
    return tool_version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]) + (" + uncommitted changes"
                                                                                        if dirty else "")


def tool_version(argv: list[str]) -> str:
    """The first line a program prints (about its version), '?' when it does not run or says nothing."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except OSError:
        return "?"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


def now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log: Path

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""


@dataclass
class Processes:
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> Child:
        """``argv`` in ``log``'s (temporary) directory, output to ``log``, in its own session: a Ctrl-C
        reaches only the bench, which then stops the children in order."""
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, env=env, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def check_alive(self) -> None:
        for child in self.children:
            if child.proc.poll() is not None:
                raise BenchError(f"{child.name} exited with {child.proc.returncode}:\n{child.tail()}")

    def stop_all(self) -> None:
        """SIGTERM to each child's process group (the launcher's, for the apps it forked), newest first;
        SIGKILL after 15 s."""
        for child in reversed(self.children):
            if child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(os.getpgid(child.proc.pid), signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in reversed(self.children):
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(os.getpgid(child.proc.pid), signal.SIGKILL)
                child.proc.wait()
        self.children.clear()

    def serve_forever(self, urls: dict[str, str]) -> None:
        """``--serve``: print what runs where and wait for Ctrl-C (to look or profile by hand)."""
        for child in self.children:
            print(f"  {child.name:<8} pid {child.proc.pid:<7} {urls.get(child.name, '')}  log {child.log}")
        print("Ctrl-C stops them.", flush=True)
        while True:
            self.check_alive()
            time.sleep(0.5)


def wait_ready(procs: Processes, url: str, timeout: float = 300.0,
               check: Callable[[bytes], str | None] | None = None) -> bytes:
    """Poll ``url`` until it answers 200 (an app's ``/readyz``) and ``check`` finds nothing to say about
    the body; returns the body. A child that exits meanwhile, or the timeout, is a :class:`BenchError`
    with the children's last log lines."""
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        procs.check_alive()
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                body = resp.read()
                last = str(resp.status) if resp.status != 200 else (check(body) if check else None) or ""
                if not last:
                    return body
        except urllib.error.HTTPError as exc:
            last = f"{exc.code} {exc.read()[:300].decode(errors='replace')}"
        except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
            last = str(exc)
        time.sleep(0.25)
    raise BenchError(f"not ready at {url} after {timeout:.0f} s ({last}):\n"
                     + "\n".join(f"--- {c.name}\n{c.tail(10)}" for c in procs.children))


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free right now (held open together while chosen, so none repeats)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        return [s.bind(("127.0.0.1", 0)) or s.getsockname()[1] for s in socks]


@dataclass
class Bench:
    """One run of a bench: its interpreter, command line, machine, temporary directory, children and
    clean-ups (run newest first when it ends, whatever the way)."""
    script: str
    python: str
    command: str
    tmp: Path
    info: dict[str, str]
    procs: Processes = field(default_factory=Processes)
    cleanups: list[Callable[[], object]] = field(default_factory=list)

    def header(self, title: str, **lines: str | None) -> None:
        """The run's first lines: the date, the machine, the commit, the command, then ``lines``."""
        i = self.info
        print(f"Chợ Vườn {title} — {now()}")
        print(f"  machine : {i['cpus']} CPUs, {i['cpu_model']}, {i['memory']}, {i['kernel']}, Python {i['python']}; "
              f"load average before the run {i['load_before']}")
        print(f"  source  : commit {i['source']}")
        print(f"  command : {self.command}")
        for key, text in lines.items():
            if text:
                print(f"  {key:<8}: {text}")
        print(flush=True)

    def write_json(self, args: argparse.Namespace, **figures: object) -> None:
        """``--json FILE``: the figures (dataclasses as their fields), with the date, the command, the machine
        and the options."""
        if args.json:
            Path(args.json).write_text(json.dumps({"date": now(), "command": self.command, "machine": self.info,
                                                   "options": vars(args), **figures}, indent=2, ensure_ascii=False,
                                                  default=lambda o: vars(o) if is_dataclass(o) else str(o)) + "\n")

    def close(self, keep: bool) -> None:
        self.procs.stop_all()
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as exc:  # noqa: BLE001 - say so, keep cleaning up
                print(f"bench/{Path(self.script).name}: clean-up failed: {exc}", file=sys.stderr)
        if keep:
            print(f"(kept {self.tmp})", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def run(script: str, body: Callable[[Bench], int], *, target: str, needs: tuple[str, ...] = (),
        keep: bool = False) -> int:
    """Run ``body`` as a bench: under the venv, a SIGTERM (a CI timeout) unwinding like Ctrl-C, every
    child stopped and every clean-up run at the end; a :class:`BenchError` is its message and status 1."""
    ensure_venv(script, *needs, target=target)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
    command = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable, REPO),
                                                 os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])
    bench = Bench(script, str(VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable)), command,
                  Path(tempfile.mkdtemp(prefix=f"bench-{Path(script).stem}-")), machine())
    try:
        return body(bench)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping what was started …", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"bench/{Path(script).name}: {exc}", file=sys.stderr)
        return 1
    finally:
        bench.close(keep)


class Options(argparse.ArgumentParser):
    """A bench's command line, described by its docstring's first paragraph, with the options the benches
    spell alike: ``--keep``, ``--json`` (unless ``json`` is false); ``env``: the name of its repeatable
    ``NAME=VALUE`` option; ``quiet``: ``--max-other-cores`` (this default) and ``--wait-quiet``; ``pg``: the
    name of its PostgreSQL admin DSN option; ``nats``: ``--nats-url``; ``serve``: ``--serve``."""

    def __init__(self, doc: str, *, env: str | None = None, quiet: float | None = None, pg: str | None = None,
                 nats: bool = False, serve: bool = False, json: bool = True) -> None:
        super().__init__(description=doc.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        self.add_argument("--keep", action="store_true", help="keep the temporary directory (databases, logs)")
        if json:
            self.add_argument("--json", metavar="FILE", help="also write every figure as JSON to FILE")
        if env:
            self.add_argument(env, action="append", default=[], metavar="NAME=VALUE", type=_pair, help="extra "
                              "environment; a name with an app's prefix (ORDERS_…) goes to that app only (repeatable)")
        if quiet is not None:
            self.add_argument("--max-other-cores", type=float, default=quiet,
                              help="a run during which other processes kept more cores busy is disturbed")
            self.add_argument("--wait-quiet", type=float, default=30.0, metavar="SECONDS",
                              help="before each measurement wait up to this long for the rest of the machine to "
                                   "calm down (0: don't)")
        if pg:
            self.add_argument(pg, default=PG_ADMIN_DSN, help="the PostgreSQL server the databases are made on")
        if nats:
            self.add_argument("--nats-url", default=os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222"),
                              help="NATS server with JetStream")
        if serve:
            self.add_argument("--serve", action="store_true",
                              help="start and seed, print URLs and pids, wait for Ctrl-C (to profile by hand)")


def _pair(item: str) -> str:
    if "=" not in item:
        raise argparse.ArgumentTypeError(f"NAME=VALUE, not {item!r}")
    return item


def base_env(**extra: str) -> dict[str, str]:
    """This environment without any app's settings, the apps quiet and in development mode."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(APP_SETTINGS)}
    env.update(LOG_LEVEL="WARNING", LOG_FORMAT="text", ENVIRONMENT="development", PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=str(REPO), **extra)
    return env


def rate_limits(*, factor: int = 1, **limits: int) -> str:
    """``GATEWAY_RATE_LIMITS`` for a bench, whose every request comes from 127.0.0.1: the gateway's rules
    with each limit × ``factor``, and the named ones (``order_ip=…``) set, windows unchanged."""
    from gateway.settings import DEFAULT_RATE_LIMITS

    rules = {name: [limit * factor, window] for name, (limit, window) in DEFAULT_RATE_LIMITS.items()}
    for name, limit in limits.items():
        rules[name.replace("_", "-")][0] = limit
    return json.dumps(rules)


def env_pairs(items: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` options (``--env``) as a dict."""
    return dict(item.split("=", 1) for item in items)


async def pg_admin(admin_dsn: str, statements: list[str]) -> str:
    """Run ``statements`` on the server's admin database; returns the server's version."""
    import asyncpg

    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        for stmt in statements:
            await conn.execute(stmt)
        return (await conn.fetchval("SHOW server_version")).split()[0]
    finally:
        await conn.close()


class Databases:
    """One database per app (of ``apps``): SQLite files in ``folder``, or fresh PostgreSQL databases
    ``<prefix>_<random>_<app>`` made on ``admin_dsn`` and dropped by :meth:`drop`."""

    def __init__(self, backend: str, folder: Path, admin_dsn: str = PG_ADMIN_DSN, prefix: str = "cv_bench",
                 apps: tuple[str, ...] = APPS) -> None:
        self.backend, self.admin_dsn = backend, admin_dsn
        self.label = "SQLite" if backend == "sqlite" else "PostgreSQL"
        self.names: dict[str, str] = {}
        if backend == "sqlite":
            import sqlite3

            self.version = f"SQLite {sqlite3.sqlite_version}"
            self.urls = {app: f"sqlite+aiosqlite:///{folder / f'{app}.db'}" for app in apps}
            return
        tag = uuid.uuid4().hex[:8]
        names = {app: f"{prefix}_{tag}_{app}" for app in apps}
        try:
            self.version = "PostgreSQL " + asyncio.run(pg_admin(admin_dsn, [f'CREATE DATABASE "{n}"'
                                                                              for n in names.values()]))
        except (OSError, TimeoutError) as exc:
            raise BenchError(f"PostgreSQL at {admin_dsn} is not reachable: {exc}") from None
        self.names = names
        base = admin_dsn.rsplit("/", 1)[0]
        self.dsns = {app: f"{base}/{name}" for app, name in names.items()}
        self.urls = {app: dsn.replace("postgresql://", "postgresql+asyncpg://", 1) for app, dsn in self.dsns.items()}

    def drop(self) -> None:
        if self.names:
            names, self.names = self.names, {}
            drop = [f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in names.values()]
            asyncio.run(pg_admin(self.admin_dsn, drop))


async def _nats(url: str, action) -> None:
    import nats

    nc = await nats.connect(url, connect_timeout=3, max_reconnect_attempts=0)
    try:
        await action(nc.jetstream(timeout=5))
    finally:
        await nc.close()


def nats_problem(url: str) -> str | None:
    """None when a NATS server with JetStream answers at ``url``, else why not."""
    try:
        asyncio.run(_nats(url, lambda js: js.account_info()))
    except Exception as exc:  # noqa: BLE001 - any failure means: not usable
        return f"{type(exc).__name__}: {exc}"
    return None


def drop_stream(url: str, namespace: str) -> None:
    """Delete the event stream of ``namespace`` (``EVENT_NAMESPACE``), if it is there."""
    from common.bus import Names

    with contextlib.suppress(Exception):
        asyncio.run(_nats(url, lambda js: js.delete_stream(Names(namespace).stream)))


class Forked:
    """An app that the launcher (``python -m common.launch``, as ``make run`` starts the apps) forked, to
    :class:`Processes` as a ``Popen``: its own pid, polled and waited for through the launcher, which stops
    every app and exits when one of them exits."""

    def __init__(self, pid: int, launcher: subprocess.Popen) -> None:
        self.pid, self.launcher = pid, launcher

    @property
    def returncode(self) -> int | None:
        return self.launcher.returncode

    def poll(self) -> int | None:
        return self.launcher.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.launcher.wait(timeout)


def _launch(procs: Processes, python: str, run_dir: Path, envs: dict[str, dict[str, str]],
            ports: dict[str, int], timeout: float) -> None:
    """The four apps forked by one launcher, as ``make run`` starts them, each a :class:`Child` of ``procs``
    with its own pid (found by the name the launcher gives it); one environment holds every app's settings
    (each reads its own prefix), their output is one log."""
    import psutil

    env = {k: v for app in APPS for k, v in envs[app].items()}
    env.update({f"{app.upper()}_{key}": value for app in APPS
                for key, value in (("HOST", "127.0.0.1"), ("PORT", str(ports[app])))})
    log = run_dir / "apps.log"
    with log.open("wb") as out:
        launcher = subprocess.Popen([python, "-m", "common.launch", *(MODULES[app] for app in APPS)], env=env,
                                    cwd=run_dir, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
    procs.children.append(Child("launcher", launcher, log))
    deadline, pids = time.monotonic() + timeout, {}
    while len(pids) < len(APPS):
        procs.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"the launcher forked {sorted(pids)} of {list(APPS)} in {timeout:.0f} s:\n"
                             f"{procs.children[-1].tail()}")
        with contextlib.suppress(psutil.Error):
            pids = {p.name(): p.pid for p in psutil.Process(launcher.pid).children() if p.name() in APPS}
        time.sleep(0.1)
    procs.children.pop()
    procs.children += [Child(app, Forked(pids[app], launcher), log) for app in APPS]


def start_apps(procs: Processes, python: str, run_dir: Path, dbs: dict[str, str], *,
               env: dict[str, str] | None = None, demo_seed: bool = False, timeout: float = 300.0,
               launcher: bool = False) -> dict[str, str]:
    """The four apps as processes in ``run_dir`` (one uvicorn worker each, on free ports, wired to each
    other, each on its database of ``dbs``); their URLs once the gateway's ``/readyz`` (which asks every
    service's) answers. ``env``: extra settings, a name with an app's prefix (``ORDERS_…``) for that app
    only. ``demo_seed``: first the demo nursery, as ``make seed`` makes it. ``launcher``: forked from one
    parent (``python -m common.launch``, as ``make run`` starts them) rather than one ``python -m <app>
    serve`` each, where the source run (``PYTHONPATH``) has it; :class:`MemoryWatch` counts the parent too."""
    ports = dict(zip(APPS, free_ports(len(APPS)), strict=True))
    url = {app: f"http://127.0.0.1:{port}" for app, port in ports.items()}
    own = {
        "notify": {"NOTIFY_DATABASE_URL": dbs["notify"]},
        "catalog": {"CATALOG_DATABASE_URL": dbs["catalog"], "CATALOG_NOTIFY_URL": url["notify"],
                    "CATALOG_PUBLIC_BASE_URL": url["gateway"], "CATALOG_MEDIA_DIR": str(run_dir / "media")},
        "orders": {"ORDERS_DATABASE_URL": dbs["orders"], "ORDERS_CATALOG_URL": url["catalog"],
                   "ORDERS_NOTIFY_URL": url["notify"], "ORDERS_PUBLIC_BASE_URL": url["gateway"]},
        "gateway": {"GATEWAY_DATABASE_URL": dbs["gateway"], "GATEWAY_CATALOG_URL": url["catalog"],
                    "GATEWAY_ORDERS_URL": url["orders"], "GATEWAY_NOTIFY_URL": url["notify"]},
    }
    extra = env or {}
    shared = {k: v for k, v in extra.items() if not k.startswith(tuple(f"{a.upper()}_" for a in APPS))}
    envs = {app: {**base_env(), **own[app], **shared, **{k: v for k, v in extra.items()
                                                          if k.startswith(f"{app.upper()}_")}} for app in APPS}
    if demo_seed:
        for app in ("gateway", "catalog"):
            done = subprocess.run([python, "-m", MODULES[app], "seed"], cwd=run_dir, env=envs[app],
                                  capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise BenchError(f"{app} seed exited with {done.returncode}:\n{done.stdout}{done.stderr}")
    source = Path(envs["gateway"].get("PYTHONPATH", str(REPO)).split(os.pathsep)[0])
    if launcher and (source / "common" / "launch.py").exists():  # a source from before it: one process each
        _launch(procs, python, run_dir, envs, ports, timeout)
    else:
        launcher = False
    for app in () if launcher else APPS:  # the first makes the development key pair under run_dir/var/keys/
        procs.start(app, [python, "-m", MODULES[app], "serve", "--host", "127.0.0.1", "--port", str(ports[app])],
                    envs[app], run_dir / f"{app}.log")
        if app == "notify":
            wait_ready(procs, f"{url[app]}/readyz", timeout)
    wait_ready(procs, f"{url['gateway']}/readyz", timeout)
    return url


def baseline_source(rev: str, into: Path) -> str:
    """``rev``'s tracked files in ``into`` (``git archive``), to run a baseline's apps beside this source's in
    one run (``PYTHONPATH=into``); returns its short commit."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", rev], capture_output=True,
                            text=True, check=True).stdout.strip()
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return commit


def stacks(tmp: Path, rev: str | None) -> dict[str, dict[str, str]]:
    """``--baseline REV``: the stacks a bench runs in turn, each name with the environment that selects its
    source: "this" and, given ``rev``, "baseline <commit>" (:func:`baseline_source` in ``tmp``)."""
    out: dict[str, dict[str, str]] = {"this": {}}
    if rev:
        out[f"baseline {baseline_source(rev, tmp / 'baseline-source')}"] = {"PYTHONPATH": str(tmp / "baseline-source")}
    return out


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self):
        """The body as JSON; {} when it is empty or of another type."""
        import orjson

        return orjson.loads(self.body) if self.body and self.headers.get("content-type", "").endswith("json") else {}


class Connection:
    """One keep-alive HTTP/1.1 connection over asyncio streams, the load generators' client: they share the
    two cores with the apps, and an ``httpx.AsyncClient`` costs ≈ 1 ms of CPU per request (more than the
    gateway's own), this ≈ 0.2 ms. A connection the server has closed is opened again (once, when a reused
    one fails before any reply byte); ``timeout`` covers a whole exchange. Failures raise :attr:`ERRORS`."""

    ERRORS = (OSError, EOFError, TimeoutError, ValueError, asyncio.LimitOverrunError)

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, *, params: dict | None = None, json: object = None,
                      headers: dict[str, str] | None = None) -> Reply:
        import orjson

        body = b"" if json is None else orjson.dumps(json)
        head = [f"{method} {path}{'?' + urllib.parse.urlencode(params) if params else ''} HTTP/1.1",
                f"Host: {self.host}:{self.port}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
        if json is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        try:
            async with asyncio.timeout(self.timeout):
                reused = self.writer is not None and not self.reader.at_eof()
                if not reused:
                    await self._open()
                try:
                    return await self._exchange(request)
                except (ConnectionError, asyncio.IncompleteReadError) as exc:
                    if not reused or getattr(exc, "partial", b""):
                        raise
                    await self._open()  # closed by the server while it idled
                    return await self._exchange(request)
        except BaseException:
            self.close()
            raise

    async def _open(self) -> None:
        self.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def _exchange(self, request: bytes) -> Reply:
        self.writer.write(request)
        lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {name.strip().lower(): value.strip() for name, _, value in (ln.partition(":") for ln in lines[1:])}
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                body += (await self.reader.readexactly(size + 2))[:-2]
            while await self.reader.readuntil(b"\r\n") != b"\r\n":  # trailers, if any
                pass
        elif status in (204, 304) or status < 200:
            body = b""
        else:
            raise ValueError(f"a {status} reply with neither Content-Length nor chunks")
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Reply(status, headers, body)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def expect(resp, status: int, what: str):
    """The JSON of an httpx reply with ``status``, else a :class:`BenchError` saying ``what`` failed."""
    if resp.status_code != status:
        raise BenchError(f"{what}: {resp.status_code} {resp.text[:500]}")
    return resp.json()


def shop_body(phone: str, **changes: object) -> dict:
    return {"name": "Vườn Sen Bà Tư", "description": "Sen và súng Đồng Tháp, giao toàn quốc", "province_code": "92",
            "ward_code": "31135", "street": "12 Lê Lợi", "phone": phone,
            "delivery": {"pickup": True, "flat_fee": 30000, "free_above": 800000}, **changes}


def guest_order(variant_id: int, quantity: int = 1, *, name: str = "Chị Lan", phone: str = "0987654321",
                address: dict | None = None, **changes: object) -> dict:
    """The body of a guest's cash-on-delivery order of one line."""
    return {"lines": [{"variant_id": variant_id, "quantity": quantity}], "contact": {"name": name, "phone": phone},
            "address": address or {"province_code": "92", "ward_code": "31135", "street": "5 Lê Lợi"},
            "payment_method": "cod", "consent": True, **changes}


async def open_shop(gw, phone: str, shop: dict | None = None, name: str = "Bà Tư") -> tuple[dict[str, str], dict]:
    """A grower registered, signed in and their shop opened through the gateway (an ``httpx.AsyncClient``);
    returns (the grower's headers, the shop: :func:`shop_body` unless given)."""
    shop = shop or shop_body(phone)
    expect(await gw.post("/api/v1/auth/register", json={"role": "grower", "name": name, "phone": phone,
                                                         "password": PASSWORD}), 201, "register the grower")
    tokens = expect(await gw.post("/api/v1/auth/token", json={"login": phone, "password": PASSWORD}), 200, "sign in")
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    return headers, expect(await gw.post("/api/v1/shops", json=shop, headers=headers), 201, "open the shop")


BUYER_NAMES, MOBILE_PREFIXES = WORDS["buyer_names"], WORDS["mobile_prefixes"]


def mobile(rng: random.Random) -> str:
    """A random number that the apps accept as a Vietnamese mobile."""
    from common.vietnam import InvalidPhone, normalise_vn_mobile

    while True:
        number = rng.choice(MOBILE_PREFIXES) + "".join(rng.choice("0123456789") for _ in range(7))
        with contextlib.suppress(InvalidPhone):
            normalise_vn_mobile(number)
            return number


def photo_jpeg(seed: int) -> bytes:
    """A 1200×900 JPEG, different for every seed (the catalog keeps one file per content): petals on a
    pond, soft gradients with some grain, so that it compresses like a photo rather than a flat colour."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = random.Random(seed)
    w, h = 1200, 900
    top, bottom = (rng.randrange(20, 80), rng.randrange(80, 140), rng.randrange(60, 120)), (10, 40, 30)
    img = Image.linear_gradient("L").resize((w, h))
    img = Image.composite(Image.new("RGB", (w, h), bottom), Image.new("RGB", (w, h), top), img)
    draw = ImageDraw.Draw(img)
    petal = (rng.randrange(200, 256), rng.randrange(60, 200), rng.randrange(100, 220))
    cx, cy = rng.randrange(400, 800), rng.randrange(300, 600)
    for i in range(14):
        angle = i * 2 * math.pi / 14
        px, py = cx + 170 * math.cos(angle), cy + 170 * math.sin(angle)
        draw.ellipse((px - 110, py - 60, px + 110, py + 60), fill=petal, outline=(255, 255, 255))
    draw.ellipse((cx - 70, cy - 70, cx + 70, cy + 70), fill=(250, 210, 60))
    for _ in range(600):  # leaves and their veins: the fine detail that makes a photo weigh
        x, y, r = rng.randrange(w), rng.randrange(h), rng.randrange(6, 60)
        if (x - cx) ** 2 + (y - cy) ** 2 < 240 ** 2:
            continue
        green = (rng.randrange(10, 70), rng.randrange(70, 170), rng.randrange(20, 80))
        draw.ellipse((x - r, y - r // 2, x + r, y + r // 2), fill=green, outline=(green[0], green[1] + 40, green[2]))
        draw.line((x - r, y, x + r, y), fill=(green[0] + 40, green[1] + 60, green[2] + 30))
    img = Image.blend(img.filter(ImageFilter.GaussianBlur(0.8)), Image.effect_noise((w, h), 40).convert("RGB"), 0.12)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def _proc_ticks(pid: int) -> tuple[int, int]:
    """(utime + stime in clock ticks, parent pid) of one process, from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[11]) + int(fields[12]), int(fields[1])


def cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """CPU time used so far by a process (and, ``with_children``, its children: nginx's worker);
    0 where /proc is absent."""
    try:
        total = _proc_ticks(pid)[0]
    except (OSError, ValueError):
        return 0.0
    for entry in Path("/proc").iterdir() if with_children else ():
        with contextlib.suppress(OSError, ValueError):
            ticks, ppid = _proc_ticks(int(entry.name)) if entry.name.isdigit() else (0, 0)
            total += ticks if ppid == pid else 0
    return total / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs have spent busy since boot (/proc/stat), 0 where absent."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


class CpuMeter:
    """``with CpuMeter(procs) as cpu: …``: the CPU seconds each child (``with_children``: and its own
    children) and this process spent meanwhile (``cpu.used``, this process as ``own``; ``own="wrk"``
    counts the programs it ran and waited for instead), and the cores other processes kept busy
    (``cpu.other_cores``: the database server, the rest of the machine)."""

    def __init__(self, procs: Processes, *, own: str | None = "bench", with_children: bool = False) -> None:
        self.procs, self.own, self.with_children = procs, own, with_children
        self.used: dict[str, float] = {}
        self.other_cores = self.elapsed = 0.0

    def _read(self) -> dict[str, float]:
        out = {c.name: cpu_seconds(c.proc.pid, with_children=self.with_children) for c in self.procs.children}
        if self.own:
            usage = resource.getrusage(resource.RUSAGE_CHILDREN if self.own == "wrk" else resource.RUSAGE_SELF)
            out[self.own] = usage.ru_utime + usage.ru_stime
        return out

    def __enter__(self) -> CpuMeter:
        self._before, self._busy, self._t0 = self._read(), machine_busy_seconds(), time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        after, busy = self._read(), machine_busy_seconds() - self._busy
        self.elapsed = time.monotonic() - self._t0
        self.used = {name: after[name] - self._before.get(name, 0.0) for name in after}
        self.other_cores = max(0.0, (busy - sum(self.used.values())) / self.elapsed) if self.elapsed and busy else 0.0


def wait_quiet(procs: Processes, seconds: float, max_cores: float, label: str = "", **meter: object) -> float:
    """Wait (up to ``seconds``) until other processes keep at most ``max_cores`` busy over a 2 s sample
    while the bench sends nothing (``--wait-quiet``, ``--max-other-cores``). Returns the last sample."""
    deadline = time.monotonic() + seconds
    while True:
        with CpuMeter(procs, **meter) as cpu:
            time.sleep(2.0)
        if cpu.other_cores <= max_cores or time.monotonic() >= deadline:
            return cpu.other_cores
        print(f"  {label}(waiting: other processes keep {cpu.other_cores:.2f} cores busy)", flush=True)
        time.sleep(3.0)


@dataclass
class MemorySample:
    t: float  # time.monotonic() of the reading
    phase: str  # what the bench was doing: "started", "seeding", "load", …
    rss: dict[str, float]  # MB per app (the process and any children)
    uss: dict[str, float | None]  # pages only this app maps
    pss: dict[str, float | None]  # its own pages plus its share of the pages it shares


class MemoryWatch:
    """Reads each child's resident memory (RSS, and USS and PSS where /proc allows) with psutil,
    every second while :meth:`sample_every_second` runs, tagged with the current ``phase``."""

    def __init__(self, procs: Processes) -> None:
        import psutil

        self.psutil = psutil
        self.procs = {c.name: psutil.Process(c.proc.pid) for c in procs.children}
        # The launcher's own pages (mostly those it shares with the apps it forked) are shared out between them.
        forked = [c for c in procs.children if isinstance(c.proc, Forked)]
        self.launcher = psutil.Process(forked[0].proc.launcher.pid) if forked else None
        self.forked = [c.name for c in forked]
        self.samples: list[MemorySample] = []
        self.uss_available = True
        self.phase = "started"

    async def sample_every_second(self) -> None:
        while True:
            await asyncio.to_thread(self.read)
            await asyncio.sleep(1.0)

    def read(self) -> MemorySample:
        t, mb, rss, uss, pss = time.monotonic(), 1_048_576, {}, {}, {}
        launcher = self._parts([self.launcher]) if self.launcher else [0, 0, 0]
        for name, proc in self.procs.items():
            total = [0, 0, 0]
            with contextlib.suppress(self.psutil.Error):
                total = self._parts([proc, *proc.children(recursive=True)])
            if name in self.forked:
                total = [a + b / len(self.forked) for a, b in zip(total, launcher, strict=True)]
            rss[name] = total[0] / mb
            uss[name] = total[1] / mb if self.uss_available else None
            pss[name] = total[2] / mb if self.uss_available and total[2] else None
        self.samples.append(sample := MemorySample(t, self.phase, rss, uss, pss))
        return sample

    def _parts(self, processes: list) -> list[float]:
        """RSS, USS and PSS (bytes) of ``processes`` added up; 0 for those gone."""
        total = [0, 0, 0]
        for p in processes:
            try:
                info = p.memory_full_info() if self.uss_available else p.memory_info()
            except self.psutil.AccessDenied:
                self.uss_available, info = False, p.memory_info()
            except self.psutil.Error:
                continue
            parts = (info.rss, getattr(info, "uss", 0), getattr(info, "pss", 0))
            total = [a + b for a, b in zip(total, parts, strict=True)]
        return total


def pct(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0–100) of ``values``, interpolated between ranks; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def table(headers: list[str], rows: list[list[object]], left: int = 1) -> str:
    """A Markdown table (the first ``left`` columns left-aligned, the others right), as printed and as
    written to docs/performance.md."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * left + "---:|" * (len(headers) - left)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


@contextlib.contextmanager
def figure(path: Path, size: tuple[float, float], *heights: float, title: str = ""):
    """``with figure(path, (w, h), 3, 1) as (top, bottom):`` axes stacked on a shared x (one per height, one
    when none), a grid on each, written to ``path`` (a PNG, matplotlib without a display) at the end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(max(1, len(heights)), 1, figsize=size, dpi=110, sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": list(heights) or [1]})
    axes = [ax for (ax,) in axes]
    axes[0].set_title(title, fontsize=10)
    yield axes
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2 if len(axes) > 1 and ax is axes[0] else 1)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_section(heading: str, text: str, *, keep_subsections: bool = False, path: Path = PERFORMANCE_MD) -> None:
    """Replace one section of docs/performance.md (``heading``, with or without a ``(bench/….py)`` after
    it) by ``text``, or add it at the end, leaving the other sections alone. ``keep_subsections``: only
    the part before the section's first ``### `` heading is replaced (subsections written by hand stay)."""
    current = path.read_text() if path.exists() else "# Performance\n"
    end = "^## |^### " if keep_subsections else "^## "
    pattern = re.compile(rf"^{re.escape(heading)}( \(bench/[\w.]+\))?\n.*?(?={end}|\Z)", re.S | re.M)
    block = text.rstrip() + "\n\n"
    if pattern.search(current):
        updated = pattern.sub(lambda _: block, current, count=1)
    else:
        updated = current.rstrip() + "\n\n" + block
    path.write_text(updated.rstrip() + "\n")
