"""A private PostgreSQL server for one test: ``initdb`` into a temporary folder, started and stopped
with ``pg_ctl`` on a free port, removed at the end. For tests that stop the database under the apps
(the machine's own server is shared and must stay up). Runs as the ``postgres`` user, so it needs root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import asyncpg

from tests.support.servers import free_port


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def unavailable() -> str | None:
    """None when a private server can be made here, else why not."""
    if _bin_dir() is None:
        return "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
    if os.geteuid() != 0:
        return "a private PostgreSQL server is run as the postgres user: needs root"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres user to run a private PostgreSQL server"
    if shutil.which("runuser") is None:
        return "runuser is missing"
    return None


class PrivatePostgres:
    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.folder = Path(tempfile.mkdtemp(prefix="cv-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = free_port()
        user = pwd.getpwnam("postgres")
        os.chown(self.folder, user.pw_uid, user.pw_gid)

    def _as_postgres(self, tool: str, *args: str, timeout: float = 120) -> None:
        out = subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / tool), *args],
                             capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({out.returncode}):\n{out.stdout}{out.stderr}\n"
                               f"{self.tail()}")

    def init(self) -> None:
        self._as_postgres("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync",
                          "--encoding=UTF8", "--locale=C.UTF-8")

    def start(self) -> None:
        # No fsync: the test stops the server, not the machine, so nothing written is lost without it.
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=200")
        self._as_postgres("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60",
                          "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every session and shuts down cleanly; ``immediate`` is a crash (recovery at start)."""
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    async def create_databases(self, names: list[str]) -> None:
        conn = await asyncpg.connect(self.dsn(), timeout=10)
        try:
            for name in names:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def remove(self) -> None:
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        try:
            self.init()
            self.start()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
