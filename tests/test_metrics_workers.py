"""Metrics add up: an app served by several worker processes (`serve --workers 2`) answers each scrape,
whichever worker takes it, with the whole process's counts; one worker's alone would be a fraction,
and would jump between scrapes. (Replicas are scraped one by one, each its own target.)"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import httpx

from tests.support.servers import ROOT, free_port, wait_until_up


def healthz_count(text: str) -> float:
    return sum(float(m.group(1)) for m in re.finditer(
        r'^http_requests_total\{[^}]*route="/healthz"[^}]*\} (\S+)$', text, re.M))


def test_two_workers_one_count(tmp_path) -> None:
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "EVENT_", "PROMETHEUS_"))},
           "NOTIFY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'notify.db'}", "LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(ROOT)}
    with (tmp_path / "notify.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "services.notify", "serve", "--port", str(port),
                                 "--workers", "2"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", timeout=120, proc=proc)
        before = healthz_count(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
        for _ in range(40):  # a new connection each: the workers share the listening socket
            with httpx.Client(timeout=5) as client:
                assert client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        for _ in range(6):
            with httpx.Client(timeout=5) as client:
                text = client.get(f"http://127.0.0.1:{port}/metrics").text
            assert healthz_count(text) - before == 40, text[:2000]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
