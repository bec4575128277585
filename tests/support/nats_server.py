"""A private NATS server with JetStream for one test: its own port and store folder, stopped and
started again on the same store (the machine's own server on :4222 is shared and must stay up)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.servers import free_port

NATS_SERVER = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin:/usr/local/sbin")


def unavailable() -> str | None:
    return None if NATS_SERVER else "nats-server is not installed (Debian: apt-get install nats-server)"


class PrivateNats:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.store = folder / "jetstream"
        self.log = folder / "nats-server.log"
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js",
                                          "-sd", str(self.store)], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nats-server did not listen on {self.port} in {timeout:.0f} s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM), as an operator's restart does; what JetStream stored stays."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> PrivateNats:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
