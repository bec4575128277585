"""An app as a real process that a test can kill (SIGKILL) and start again on the same port.

``python -m <module> serve`` with its settings from the environment, as a container runs it, in a
folder of the test's own (no ``.env`` from the repository is read) and in its own process group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.servers import ROOT, free_port, wait_until_up


class AppProcess:
    def __init__(self, module: str, env: dict[str, str], folder: Path, port: int | None = None) -> None:
        self.module, self.folder = module, folder
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"{module.rsplit('.', 1)[-1]}.log"
        # Only this test's settings: none of the caller's ORDERS_*/CATALOG_*… variables leak in.
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith(("CATALOG_", "GATEWAY_", "ORDERS_", "NOTIFY_", "EVENT_", "SMTP_"))}
        self.env = {**inherited, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING",
                    **env}
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 120.0) -> None:
        """Start the process and wait until ``/healthz`` answers (migrations run before that)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with self.log.open("ab") as log:
            log.write(f"--- start {self.starts + 1} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen([sys.executable, "-m", self.module, "serve", "--port", str(self.port)],
                                         cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.starts += 1
        try:
            wait_until_up(f"{self.url}/healthz", timeout=timeout, proc=self.proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.tail()}") from None

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, open transactions and requests are cut where they are."""
        assert self.proc is not None and self.proc.poll() is None, "not running"
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> AppProcess:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

