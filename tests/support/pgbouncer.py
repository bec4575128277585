"""Debian's PgBouncer, started by a test in front of the local PostgreSQL, in transaction mode.

It refuses to run as root, so under root it runs as the ``postgres`` user, from a folder that user
can read. Trust authentication, as the test server has it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.support.databases import PG_ADMIN_DSN, require
from tests.support.servers import free_port

BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@contextlib.contextmanager
def pgbouncer(server_connections: int = 2) -> Iterator[int]:
    """A PgBouncer in transaction mode with ``server_connections`` per database and user; its port."""
    require(os.path.exists(BINARY), f"PgBouncer is not installed at {BINARY} (apt-get install pgbouncer)")
    target = make_url(PG_ADMIN_DSN)
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="cv-pgbouncer-"))
    folder.chmod(0o777)
    (folder / "userlist.txt").write_text(f'"{target.username}" ""\n')
    (folder / "pgbouncer.ini").write_text(f"""[databases]
* = host={target.host or '127.0.0.1'} port={target.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / 'userlist.txt'}
pool_mode = transaction
default_pool_size = {server_connections}
max_client_conn = 500
ignore_startup_parameters = extra_float_digits
logfile = {folder / 'pgbouncer.log'}
""")
    for f in folder.iterdir():
        f.chmod(0o666)
    command = [BINARY, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if proc.poll() is not None:
                raise RuntimeError(f"PgBouncer ended: {(folder / 'pgbouncer.log').read_text()[-2000:]}")
            time.sleep(0.05)
        else:
            raise RuntimeError("PgBouncer did not listen")
        yield port
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(folder, ignore_errors=True)


def through(url: str, port: int) -> str:
    """``url`` (a test database's) sent through the PgBouncer on ``port``."""
    return make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
