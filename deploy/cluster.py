"""The cluster shape on one machine: two replicas of every app on PostgreSQL, NATS JetStream and Redis.

    .venv/bin/python deploy/cluster.py run       # make run-cluster; Ctrl-C stops every replica
    .venv/bin/python deploy/cluster.py stop      # make stop-cluster, from another terminal

It uses the servers already running on this machine (PostgreSQL 127.0.0.1:5432, NATS 127.0.0.1:4222,
Redis 127.0.0.1:6379) and never restarts or reconfigures them: it makes databases of its own
(``cv_cluster_<app>``, created when missing), a JetStream stream of its own (namespace ``cvcluster``:
stream ``CVCLUSTER_EVENTS``) and a Redis database number of its own.

Ports (base ``CLUSTER_PORT``, 8000): replica ``n`` (1, 2) of the gateway on base + 10·n (8010, 8020),
of catalog, orders and notify on base + 10·n + 1, 2, 3 (8011/8021, 8012/8022, 8013/8023). Both
gateway replicas also listen on the base port itself, shared (SO_REUSEPORT: the kernel spreads the
connections over the replicas listening, and a stopped one's share goes to the other): that is the
marketplace's address, http://localhost:8000, with nothing in front. Each gateway replica spreads
each service's traffic over both of its replicas (``GATEWAY_CATALOG_URL=http://127.0.0.1:8011,
http://127.0.0.1:8021``…, common/balancing.py), as orders does its calls to the catalog.

Each replica's pid is in ``var/cluster/<app>-<n>.pid`` (this runner's in ``var/cluster/cluster.pid``),
its output on this terminal prefixed with its name. A replica that exits unasked (``kill -9``, a
crash) is started again at once, the others going on meanwhile (one that keeps dying soon after
its start is retried less and less often). The catalog's replicas share their photos folder
(``var/cluster/media``, docs/decisions/0025-photos-shared-by-replicas.md).

Settings of the cluster itself (the environment): ``CLUSTER_PORT``, ``CLUSTER_REPLICAS`` (2),
``CLUSTER_POSTGRES`` (the server's admin DSN, ``postgresql://root@127.0.0.1:5432/postgres``),
``CLUSTER_DATABASE_PREFIX`` (``cv_cluster``), ``CLUSTER_NATS`` (``nats://127.0.0.1:4222``),
``CLUSTER_NAMESPACE`` (``cvcluster``), ``CLUSTER_REDIS`` (``redis://127.0.0.1:6379/3``), ``CLUSTER_DIR``
(``var/cluster``). Any app
setting exported (``ORDERS_…``) reaches every replica unless the cluster sets it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
APPS = {"gateway": "gateway", "catalog": "services.catalog", "orders": "services.orders", "notify": "services.notify"}
OFFSET = {"gateway": 0, "catalog": 1, "orders": 2, "notify": 3}
# Every replica's database pool: size and overflow. 8 processes × (4 + 4) = 64 connections at most
# (docs/operations.md, "Connection budget"), within PostgreSQL's default 100 on a shared machine.
POOL = {"DB_POOL_SIZE": "4", "DB_MAX_OVERFLOW": "4"}
STOP_GRACE = 15.0
CRASH_LOOP = 10.0  # a replica that exits sooner than this after its start waits longer before the next


def write_pid(path: Path, pid: int) -> None:
    """``path`` holds ``pid`` at once or not at all: written aside, then renamed over it (a reader, a
    script or ``kill $(cat …)``, never finds it empty while a replica restarts)."""
    aside = path.with_name(f".{path.name}.tmp")
    aside.write_text(f"{pid}\n")
    os.replace(aside, path)


class Cluster:
    def __init__(self, folder: Path, port: int, replicas: int, env: dict[str, str]) -> None:
        self.folder, self.port, self.replicas = folder, port, replicas
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self.started_at: dict[str, float] = {}  # monotonic time of each replica's last start
        self.delay: dict[str, float] = {}  # the last wait before starting a replica that exited again
        self.retry_at: dict[str, float] = {}  # exited replicas waiting to be started again

    # -- where each replica is -------------------------------------------------------------------------
    def replica_port(self, app: str, n: int) -> int:
        return self.port + 10 * n + OFFSET[app]

    def urls(self, app: str) -> str:
        return ",".join(f"http://127.0.0.1:{self.replica_port(app, n)}" for n in range(1, self.replicas + 1))

    def names(self) -> list[tuple[str, int]]:
        # The services first, the gateways last: the gateways serve the public port once the rest is up.
        return [(app, n) for app in ("notify", "catalog", "orders", "gateway") for n in range(1, self.replicas + 1)]

    def pid_file(self, app: str, n: int) -> Path:
        return self.folder / f"{app}-{n}.pid"

    # -- starting and stopping -------------------------------------------------------------------------
    def start(self, app: str, n: int) -> subprocess.Popen:
        args = [sys.executable, "-m", APPS[app], "serve", "--port", str(self.replica_port(app, n))]
        if app == "gateway":
            args += ["--shared-port", str(self.port)]
        proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs[f"{app}-{n}"] = proc
        self.started_at[f"{app}-{n}"] = time.monotonic()
        write_pid(self.pid_file(app, n), proc.pid)
        threading.Thread(target=_copy_output, args=(f"{app}-{n}", proc), daemon=True).start()
        return proc

    def wait_up(self, app: str, n: int, timeout: float = 120.0) -> None:
        url = f"http://127.0.0.1:{self.replica_port(app, n)}/healthz"
        proc = self.procs[f"{app}-{n}"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"{app}-{n} exited with {proc.returncode} while starting")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"{app}-{n} did not answer {url} in {timeout:.0f} s")

    def stop(self, app: str, n: int) -> None:
        proc = self.procs.pop(f"{app}-{n}", None)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.pid_file(app, n).unlink(missing_ok=True)

    def stop_all(self) -> None:
        for app, n in reversed(self.names()):
            proc = self.procs.get(f"{app}-{n}")
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # all at once; each is waited for below
        for app, n in reversed(self.names()):
            self.stop(app, n)

    def rolling_restart(self) -> None:
        """Each replica of each app in turn: stopped (SIGTERM), started again, waited for."""
        for app, n in self.names():
            print(f"cluster: restarting {app}-{n}", flush=True)
            self.stop(app, n)
            self.start(app, n)
            self.wait_up(app, n)
        print("cluster: rolling restart done", flush=True)


    def restart_exited(self) -> None:
        """A replica that exited unasked (killed, crashed) is started again, as a process manager
        would; the others go on meanwhile. One that dies again within ``CRASH_LOOP`` seconds of its
        start waits twice as long each time (up to a minute) before the next try."""
        now = time.monotonic()
        for name, proc in list(self.procs.items()):
            if proc.poll() is None:
                continue
            app, n = name.rsplit("-", 1)
            if name not in self.retry_at:
                lived = now - self.started_at.get(name, 0.0)
                delay = min(60.0, 2 * self.delay.get(name, 0.5)) if lived < CRASH_LOOP else 0.0
                self.delay[name] = delay
                self.retry_at[name] = now + delay
                print(f"cluster: {name} exited with {proc.returncode}; starting it again"
                      + (f" in {delay:.0f} s" if delay else ""), flush=True)
            if now >= self.retry_at[name]:
                del self.retry_at[name]
                self.start(app, int(n))


def _copy_output(name: str, proc: subprocess.Popen) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(f"{name:<10}| {line.decode(errors='replace')}")
        sys.stdout.flush()


def cluster_env(cluster: Cluster, database_prefix: str, postgres: str, nats: str, namespace: str,
                redis: str) -> dict[str, str]:
    base = postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "EVENT_BUS_URL": nats, "EVENT_NAMESPACE": namespace,
           "GATEWAY_REDIS_URL": redis, "CATALOG_MEDIA_DIR": str(cluster.folder / "media")}
    for app in APPS:
        prefix = app.upper() + "_"
        env[prefix + "DATABASE_URL"] = f"{base}/{database_prefix}_{app}"
        env.setdefault(prefix + "PUBLIC_BASE_URL", f"http://localhost:{cluster.port}")
        for name, value in POOL.items():
            env.setdefault(prefix + name, value)
    for service in ("catalog", "orders", "notify"):
        env[f"GATEWAY_{service.upper()}_URL"] = cluster.urls(service)
    env["ORDERS_CATALOG_URL"] = cluster.urls("catalog")
    env["ORDERS_NOTIFY_URL"] = env["CATALOG_NOTIFY_URL"] = cluster.urls("notify")
    return env


async def create_databases(postgres: str, names: list[str]) -> None:
    import asyncpg

    conn = await asyncpg.connect(postgres, timeout=10)
    try:
        existing = {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
        for name in names:
            if name not in existing:
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def run(args: argparse.Namespace) -> None:
    folder = Path(args.dir).resolve()
    (folder / "media").mkdir(parents=True, exist_ok=True)
    cluster = Cluster(folder, args.port, args.replicas, {})
    cluster.env = cluster_env(cluster, args.database_prefix, args.postgres, args.nats, args.namespace, args.redis)
    asyncio.run(create_databases(args.postgres, [f"{args.database_prefix}_{app}" for app in APPS]))
    write_pid(folder / "cluster.pid", os.getpid())

    stopping = threading.Event()
    restart = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGHUP, lambda *_: restart.set())
    try:
        if not args.no_seed:
            for module in ("gateway", "services.catalog"):
                subprocess.run([sys.executable, "-m", module, "seed"], cwd=ROOT, env=cluster.env, check=True)
        for app, n in cluster.names():  # all at once: migrations run once, under their lock
            cluster.start(app, n)
        for app, n in cluster.names():
            cluster.wait_up(app, n)
        print(f"\n  Chợ Vườn, {args.replicas} replicas of every app, on http://localhost:{args.port}\n"
              f"    gateway replicas: {cluster.urls('gateway')} (and :{args.port}, shared)\n"
              f"    catalog: {cluster.urls('catalog')}\n    orders: {cluster.urls('orders')}\n"
              f"    notify: {cluster.urls('notify')}\n"
              f"  pids in {folder}/; Ctrl-C or `make stop-cluster` stops them all,\n"
              f"  `kill -HUP $(cat {folder}/cluster.pid)` restarts them one by one.\n", flush=True)
        while not stopping.wait(0.5):
            if restart.is_set():
                restart.clear()
                cluster.rolling_restart()
            cluster.restart_exited()
    finally:
        print("cluster: stopping every replica", flush=True)
        cluster.stop_all()
        (folder / "cluster.pid").unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(args: argparse.Namespace) -> None:
    """SIGTERM to the runner (which stops its replicas), then to any replica left (a runner killed)."""
    folder = Path(args.dir).resolve()
    runner = folder / "cluster.pid"
    if runner.exists():
        pid = int(runner.read_text())
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE + 15
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
        runner.unlink(missing_ok=True)
    for pid_file in sorted(folder.glob("*-*.pid")):
        pid = int(pid_file.read_text())
        if _alive(pid):
            os.killpg(pid, signal.SIGTERM)
        pid_file.unlink(missing_ok=True)
    print("cluster: stopped")


def main() -> None:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="deploy/cluster.py")
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run")
    go.add_argument("--port", type=int, default=int(env("CLUSTER_PORT", "8000")))
    go.add_argument("--replicas", type=int, default=int(env("CLUSTER_REPLICAS", "2")))
    go.add_argument("--postgres", default=env("CLUSTER_POSTGRES", "postgresql://root@127.0.0.1:5432/postgres"))
    go.add_argument("--database-prefix", default=env("CLUSTER_DATABASE_PREFIX", "cv_cluster"))
    go.add_argument("--nats", default=env("CLUSTER_NATS", "nats://127.0.0.1:4222"))
    go.add_argument("--namespace", default=env("CLUSTER_NAMESPACE", "cvcluster"))
    go.add_argument("--redis", default=env("CLUSTER_REDIS", "redis://127.0.0.1:6379/3"))
    go.add_argument("--no-seed", action="store_true", help="do not seed the demo nursery")
    halt = sub.add_parser("stop")
    for command in (go, halt):
        command.add_argument("--dir", default=env("CLUSTER_DIR", str(ROOT / "var" / "cluster")),
                             help="pid files, photos (var/cluster)")
    args = parser.parse_args()
    (run if args.command == "run" else stop)(args)


if __name__ == "__main__":
    main()
